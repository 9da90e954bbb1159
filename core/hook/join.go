package hook

// JoinRequest is a user asking to join a group.
type JoinRequest struct {
	// User is the logged-in user id.
	User string
	// Group is the group id asked for.
	Group string
	// Name is the group name the client sent (cmd 7 `name`, optional).
	Name string
	// Protocol is ProtocolTCP, ProtocolWS or ProtocolHTTP.
	Protocol string
	// Addr is the remote address.
	Addr string
}

// JoinReply is the decision on a join. The zero value allows it.
type JoinReply struct {
	// Deny refuses the join: the gateway answers cmd 8 with code 10012 and Reason.
	Deny bool
	// Reason says why.
	Reason string
	// Script is the script that decided (empty when no script had an opinion).
	Script string
}

// DisconnectEvent tells that a connection ended.
type DisconnectEvent struct {
	// User is the logged-in user id (empty when the connection never logged in).
	User string
	// Addr is the remote address.
	Addr string
	// Protocol is ProtocolTCP, ProtocolWS or ProtocolHTTP.
	Protocol string
	// Reason is why it ended (e.g. "close", "idle", "error", "kicked", "shutdown").
	Reason string
}

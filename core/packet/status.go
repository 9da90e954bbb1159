package packet

// Status is the `code` of a response body: t-im's codes and timgw's own from 10023 up
// (docs/protocol.md section 3).
type Status int

// t-im's status codes.
const (
	StatusOK               Status = 10000 // ok, sent
	StatusOffline          Status = 10001 // receiver offline, message kept for later
	StatusSendFailed       Status = 10002
	StatusGetUserOK        Status = 10003
	StatusGetUserFailed    Status = 10004
	StatusGetOnlineOK      Status = 10005
	StatusGetOfflineOK     Status = 10006
	StatusLoginOK          Status = 10007
	StatusLoginFailed      Status = 10008
	StatusAuthOK           Status = 10009
	StatusAuthFailed       Status = 10010
	StatusJoinGroupOK      Status = 10011
	StatusJoinGroupFailed  Status = 10012
	StatusVersionMismatch  Status = 10013
	StatusUnsupportedCmd   Status = 10014
	StatusGetMessageFailed Status = 10015
	StatusGetOfflineMsgOK  Status = 10016
	StatusUnknownCmd       Status = 10017
	StatusGetHistoryOK     Status = 10018
	StatusReceiverOnline   Status = 10019
	StatusInvalidBody      Status = 10020
	StatusCloseOK          Status = 10021
	StatusPersistenceOff   Status = 10022
)

// timgw's additions.
const (
	StatusNotLoggedIn         Status = 10023 // the request needs a logged-in connection
	StatusNoReceiver          Status = 10024 // a chat names no receiver (no `to`, no `groupId`, bad chatType)
	StatusNotGroupMember      Status = 10025 // group chat or group read by a non-member
	StatusTooLarge            Status = 10026 // frame or chat content over the configured limit
	StatusRejected            Status = 10027 // refused by a rule (Lua hook)
	StatusRateLimited         Status = 10028 // refused by a rate limit
	StatusForbidden           Status = 10029 // the request names what is not the caller's own
	StatusStorageUnavailable  Status = 10030 // storage is down: the chat was not accepted
	StatusNotFound            Status = 10031 // the message or object named does not exist
	StatusRecallWindowExpired Status = 10032 // recall asked after the configured window
	StatusMalformedFrame      Status = 10033 // bytes that are not a frame of the protocol
	StatusServerBusy          Status = 10034 // the gateway is shutting down or overloaded
	StatusInvalidUTF8         Status = 10036 // a body (a chat's content, an id) that is not valid UTF-8
	StatusFrameTimeout        Status = 10037 // a frame started was not completed within limits.frame_timeout
)

var statusText = map[Status]string{
	StatusOK: "ok", StatusOffline: "receiver offline", StatusSendFailed: "send failed",
	StatusGetUserOK: "get user ok", StatusGetUserFailed: "get user failed",
	StatusGetOnlineOK: "get online users ok", StatusGetOfflineOK: "get offline users ok",
	StatusLoginOK: "login ok", StatusLoginFailed: "login failed", StatusAuthOK: "auth ok",
	StatusAuthFailed: "auth failed", StatusJoinGroupOK: "join group ok",
	StatusJoinGroupFailed: "join group failed", StatusVersionMismatch: "protocol version mismatch",
	StatusUnsupportedCmd: "unsupported cmd", StatusGetMessageFailed: "get message failed",
	StatusGetOfflineMsgOK: "get offline messages ok", StatusUnknownCmd: "unknown cmd",
	StatusGetHistoryOK: "get history messages ok", StatusReceiverOnline: "receiver online",
	StatusInvalidBody: "invalid request body", StatusCloseOK: "close ok",
	StatusPersistenceOff: "persistence is off", StatusNotLoggedIn: "not logged in",
	StatusNoReceiver: "no receiver", StatusNotGroupMember: "not a group member",
	StatusTooLarge: "payload too large", StatusRejected: "rejected by a rule",
	StatusRateLimited: "rate limited", StatusForbidden: "forbidden",
	StatusStorageUnavailable: "storage unavailable", StatusNotFound: "not found",
	StatusRecallWindowExpired: "recall window expired", StatusMalformedFrame: "malformed frame",
	StatusServerBusy:  "server busy",
	StatusInvalidUTF8: "invalid UTF-8", StatusFrameTimeout: "frame timeout",
}

// Text returns the default message for a status.
func (s Status) Text() string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return "error"
}

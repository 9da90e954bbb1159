// Types of the timgw JavaScript client (src/timgw.js). Hand-written; keep them in step
// with the module.

/** Command numbers of the protocol (docs/protocol.md). */
export declare const CMD: Readonly<{
  ERROR: 0; LOGIN_REQ: 5; LOGIN_RESP: 6; JOIN_REQ: 7; JOIN_RESP: 8; JOIN_NOTIFY: 9; EXIT_NOTIFY: 10;
  CHAT: 11; CHAT_RESP: 12; HEARTBEAT: 13; CLOSE: 14; RECALL_REQ: 15; RECALL_RESP: 16;
  GET_USER_REQ: 17; GET_USER_RESP: 18; GET_MSG_REQ: 19; GET_MSG_RESP: 20;
  LEAVE_REQ: 21; LEAVE_RESP: 22; TYPING_REQ: 23; TYPING_NOTIFY: 24;
  RECEIPT_REQ: 25; RECEIPT_RESP: 26; RECEIPT_NOTIFY: 27; CONVERSATIONS_REQ: 28; CONVERSATIONS_RESP: 29;
}>;
export declare const CHAT_GROUP: 1;
export declare const CHAT_PRIVATE: 2;

/** A refusal by the gateway (code: its status code) or a local failure (code 0). */
export declare class TimError extends Error {
  readonly code: number;
  /** The gateway's answer, when there was one. */
  readonly response?: Record<string, unknown>;
  /** A chat that timed out in the outbox: its id, and whether it was written (the gateway may have it). */
  readonly id?: string;
  readonly written?: boolean;
  constructor(message: string, code?: number, response?: Record<string, unknown>);
}

/** The WebSocket constructor the client uses (the browser's, Node's, or the `ws` package's). */
export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface ClientOptions {
  /** ws://host:8888/ or wss://host/ (any path). */
  url: string;
  /** The user to log in as (cmd 5); in jwt mode it must equal the token's sub, or be left out. */
  userId?: string;
  password?: string;
  /** HS256 JWT, in jwt auth mode. */
  token?: string;
  /** Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect after a lost connection (default true). */
  reconnect?: boolean;
  /** First reconnect wait in ms, doubled per attempt (default 500). */
  reconnectMinDelay?: number;
  /** Longest reconnect wait in ms (default 30000). */
  reconnectMaxDelay?: number;
  /** Share of each wait taken away at random, 0..1 (default 0.5). */
  reconnectJitter?: number;
  /** Heartbeat (cmd 13) period in ms; 0 sends none (default 30000). */
  heartbeatInterval?: number;
  /** Wait for an answer in ms (default 15000). */
  requestTimeout?: number;
  /** Fetch and confirm offline messages after every login (default true). */
  fetchOffline?: boolean;
  /** Page size of the offline fetch (default 100). */
  offlinePageSize?: number;
  /**
   * Keep unanswered chats and write them again after a reconnect, with the same ids,
   * before newer chats (default true); false: a lost connection rejects them.
   */
  outbox?: boolean;
  /** Chats that may wait for their answers; send rejects beyond it at once (default 1000). */
  maxOutbox?: number;
}

export interface User {
  userId: string;
  nick?: string;
  avatar?: string;
  status?: string;
  groups?: Array<Group | string>;
  [key: string]: unknown;
}

export interface Group {
  groupId: string;
  name?: string;
  [key: string]: unknown;
}

/** A chat message, numbers normalised. */
export interface Message {
  id?: string;
  from?: string;
  to?: string;
  groupId?: string;
  /** 1 group, 2 private. */
  chatType: number;
  /** 0 text, 1 image, 2 voice, 3 video, 4 music, 5 news. */
  msgType: number;
  content: string;
  createTime?: number;
  seq?: number;
  extras?: unknown;
  recalled?: boolean;
  /** True when it came from the offline fetch rather than live. */
  offline: boolean;
}

/** A message of a history page: cmd 11 for a chat, 16 for a recall event. */
export interface HistoryMessage extends Message {
  cmd: number;
}

/** What send resolves with: the cmd 12 answer's data and code. */
export interface ChatAck {
  /** 10000 accepted, 10001 receiver offline (kept for later). */
  code: number;
  msg?: string;
  id: string;
  seq?: number;
  createTime?: number;
  serverTime?: number;
  delivered?: number;
  duplicate?: boolean;
  [key: string]: unknown;
}

export interface ChatInput {
  id?: string;
  to?: string;
  groupId?: string;
  chatType?: number;
  msgType?: number;
  content: string;
  extras?: unknown;
  createTime?: number;
}

export interface HistoryQuery {
  /** The peer of a private conversation. */
  peer?: string;
  groupId?: string;
  count?: number;
  offset?: number;
  afterSeq?: number;
  beforeSeq?: number;
  beginTime?: number;
  endTime?: number;
  reverse?: boolean;
}

/** A user's cursors (seqs) of a conversation: everything up to delivered arrived, up to read was read. */
export interface Receipt {
  to?: string;
  groupId?: string;
  delivered?: number;
  read?: number;
}

/** An entry of the conversation list (cmd 29). */
export interface Conversation {
  type: "private" | "group";
  peer?: string;
  groupId?: string;
  name?: string;
  last?: Message;
  lastSeq?: number;
  unread?: number;
  delivered?: number;
  read?: number;
  /** Private only: the peer's cursors. */
  peerDelivered?: number;
  peerRead?: number;
  [key: string]: unknown;
}

export type Notice =
  | { type: "join" | "leave"; userId?: string; groupId?: string; user: unknown; group: unknown }
  | { type: "recall"; message: Message; offline: boolean };

export interface ClientEvents {
  open: { url: string; reconnect: boolean };
  login: { user: User; reconnect: boolean };
  message: Message;
  notice: Notice;
  typing: { from?: string; to?: string; groupId?: string; state: string };
  /** Another user's (or one's other device's) cursors were raised (cmd 27). */
  receipt: Receipt & { from: string };
  error: TimError;
  close: { code: number; reason: string; willReconnect: boolean };
  reconnecting: { attempt: number; delay: number };
}

export type ClientState = "idle" | "connecting" | "online" | "reconnecting" | "closed";

export declare class TimClient {
  constructor(options: ClientOptions);
  readonly options: Required<Omit<ClientOptions, "userId" | "password" | "token" | "WebSocket">> & ClientOptions;
  /** The logged-in user, null before the first login. */
  readonly user: User | null;
  readonly state: ClientState;
  /** Groups joined through this client: joined again after each reconnect. */
  readonly groups: Set<string>;
  /** The current WebSocket, for diagnostics. */
  readonly socket: WebSocketLike | null;
  /** Ids of the chats waiting for their answers (the outbox), in send order. */
  readonly outbox: string[];

  on<E extends keyof ClientEvents>(event: E, fn: (e: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, fn: (e: ClientEvents[E]) => void): void;
  once<E extends keyof ClientEvents>(event: E, filter?: (e: ClientEvents[E]) => boolean): Promise<ClientEvents[E]>;

  /** Opens the connection and logs in; resolves with the user. */
  connect(): Promise<User>;
  /** Ends the session: no reconnection, pending requests rejected. */
  close(): void;
  /** Skips the wait of a pending reconnection. */
  reconnectNow(): void;

  send(chat: ChatInput): Promise<ChatAck>;
  sendPrivate(to: string, content: string, extra?: Partial<ChatInput>): Promise<ChatAck>;
  sendGroup(groupId: string, content: string, extra?: Partial<ChatInput>): Promise<ChatAck>;
  joinGroup(groupId: string, name?: string): Promise<Group>;
  leaveGroup(groupId: string): Promise<Group>;
  /** False when not connected. Refusals arrive as "error" events (no answer when accepted). */
  typing(target: { to: string } | { groupId: string }, state?: string): boolean;
  onlineUsers(): Promise<User[]>;
  history(q: HistoryQuery): Promise<{ messages: HistoryMessage[]; more: boolean }>;
  recall(id: string, conv: { to: string } | { groupId: string }): Promise<Message>;
  /** Raises this user's cursors of a conversation (cmd 25); resolves with them as stored. */
  receipt(conv: { to: string } | { groupId: string }, cursors: { delivered?: number; read?: number }): Promise<Receipt>;
  /** This user's conversations, newest last chat first (cmd 28). */
  conversations(q?: { limit?: number; before?: number }): Promise<{ conversations: Conversation[]; next?: number }>;
  /** Resolves with how many offline messages were emitted. */
  fetchOffline(): Promise<number>;
}

export declare function backoffDelay(attempt: number, opts?: { min?: number; max?: number; jitter?: number }, random?: () => number): number;
export declare function normalizeChat(m: Record<string, unknown>, offline?: boolean): Message;
export declare function chatsOf(data: unknown): Array<Record<string, unknown>>;

//! The documented limits of the contract.
//!
//! These numbers appear three times and must agree: here, in the schema constraints of the
//! OpenAPI document (a test in `realtime-api` compares them), and in [`crate::validate`],
//! which is the only code that enforces them.

/// Longest channel name, in bytes (Pusher's limit, prefixes included).
pub const CHANNEL_NAME_MAX_LEN: usize = 164;
/// Characters a channel name may contain (Pusher's charset).
pub const CHANNEL_NAME_PATTERN: &str = r"^[A-Za-z0-9_\-=@,.;]+$";
/// Longest event name, in bytes.
pub const EVENT_NAME_MAX_LEN: usize = 200;
/// Characters an event name may contain; names starting with a reserved prefix are refused.
pub const EVENT_NAME_PATTERN: &str = r"^(?!pusher:|pusher_internal:|realtime:)[A-Za-z0-9_\-.:]+$";
/// Event name prefixes reserved for protocol events.
pub const RESERVED_EVENT_PREFIXES: [&str; 3] = ["pusher:", "pusher_internal:", "realtime:"];
/// Largest `data` payload of one message, measured as compact JSON, in bytes.
pub const DATA_MAX_BYTES: usize = 10 * 1024;
/// Most messages in one `publish.batch` call.
pub const BATCH_MAX_MESSAGES: usize = 100;
/// Most channels named by one token or one `auth.sign` call.
pub const TOKEN_MAX_CHANNELS: usize = 100;
/// Longest client id or user id.
pub const CLIENT_ID_MAX_LEN: usize = 128;
/// Characters a client id or user id may contain.
pub const CLIENT_ID_PATTERN: &str = r"^[A-Za-z0-9_\-.:@|]+$";
/// Token lifetimes above this are clamped to it (`MAX_TTL_SECONDS`).
pub const MAX_TTL_SECONDS: u32 = 86_400;
/// Token lifetime when none is asked for.
pub const DEFAULT_TTL_SECONDS: u32 = 3_600;
/// Largest page of `channel.list`.
pub const PAGE_MAX_LIMIT: u32 = 100;
/// Page size of `channel.list` when none is asked for.
pub const PAGE_DEFAULT_LIMIT: u32 = 20;
/// Longest idempotency key.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// Characters an idempotency key may contain: visible ASCII, `!` (0x21) to `~` (0x7E).
pub const IDEMPOTENCY_KEY_PATTERN: &str = r"^[!-~]+$";
/// What the `Idempotency-Key` header may hold: a key, bare or in the double quotes of a
/// Structured Field string (`"abc"` is the key `abc`; `""` is no key at all).
pub const IDEMPOTENCY_KEY_HEADER_PATTERN: &str = r#"^(?!""$)(?:[!-~]{1,255}|"[!-~]{1,255}")$"#;
/// Deepest nesting of arrays and objects in a request body, the body itself being the
/// first level; deeper bodies get 422 `VALIDATION_ERROR` before they are parsed.
pub const JSON_MAX_DEPTH: usize = 32;
/// Longest `channel.list` cursor.
pub const CURSOR_MAX_LEN: usize = 512;
/// What a `channel.list` cursor looks like: unpadded base64url (a length that is not one
/// more than a multiple of four). Any such string is a position in the list; only the
/// `next_cursor` of a page means "the next page".
pub const CURSOR_PATTERN: &str = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$";
/// Largest request body, in bytes; larger bodies get 413 `PAYLOAD_TOO_LARGE`.
pub const BODY_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Smallest and largest top-up, in micro-units of USD.
pub const TOPUP_MIN_MICROS: u64 = 1_000_000;
/// Largest top-up, in micro-units of USD ($1,000).
pub const TOPUP_MAX_MICROS: u64 = 1_000_000_000;
/// Longest `token_or_jti` (a whole token).
pub const TOKEN_MAX_LEN: usize = 4096;

/// Largest page of `realtime.channel.history`.
pub const HISTORY_MAX_LIMIT: u32 = 100;

/// Page size of `realtime.channel.history` when `limit` is absent.
pub const HISTORY_DEFAULT_LIMIT: u32 = 50;

/// Most messages one recovering subscribe replays; past it the subscribe answers
/// `recovered: false` with `too_many`.
pub const RECOVERY_MAX_MESSAGES: u64 = 1000;

/// Default and largest `timeout` of a user command, in seconds (the seed's 30 minutes).
pub const COMMAND_MAX_TIMEOUT_SECONDS: u32 = 1800;

/// Longest an HTTP call waits for a command's response, in seconds: below the reference
/// server's default request timeout (30 s), so that the wait ends first.
pub const COMMAND_MAX_WAIT_SECONDS: u32 = 25;

/// Days an unacknowledged reliable message is kept.
pub const USER_MESSAGE_RETENTION_DAYS: i64 = 7;

/// Most unacknowledged reliable messages a user may have; past it a send is refused with
/// 409 `BACKLOG_FULL`.
pub const USER_BACKLOG_MAX: u64 = 1000;

/// Most reliable messages delivered again on one connect: the whole backlog.
pub const USER_REDELIVERY_MAX: u32 = 1000;

//! The route table: every operation of the contract with its method and path, as the
//! router serves them and clients call them.

/// One operation of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationRoute {
    /// The operationId (the capability name).
    pub id: &'static str,
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path template, with `{channel}` where a channel name goes.
    pub path: &'static str,
    /// True for the seed-000 SDK aliases.
    pub deprecated: bool,
}

impl OperationRoute {
    /// Whether the operation changes state: every `POST` and `DELETE`, which are the
    /// operations that take an idempotency key.
    pub fn is_write(&self) -> bool {
        self.method == "POST" || self.method == "DELETE"
    }
}

macro_rules! operations {
    ($($name:ident = $id:literal, $method:literal, $path:literal, $deprecated:literal;)*) => {
        $(
            #[doc = concat!("`", $id, "`: `", $method, " ", $path, "`")]
            pub const $name: OperationRoute = OperationRoute { id: $id, method: $method, path: $path, deprecated: $deprecated };
        )*
        /// Every operation the router serves; a test holds this table equal to the document.
        pub const OPERATIONS: &[OperationRoute] = &[$($name),*];
    };
}

operations! {
    TOKEN_ISSUE = "realtime.token.issue", "POST", "/v1/realtime/token/issue", false;
    TOKEN_REVOKE = "realtime.token.revoke", "POST", "/v1/realtime/token/revoke", false;
    CHANNEL_CREATE = "realtime.channel.create", "POST", "/v1/realtime/channel/create", false;
    CHANNEL_GET = "realtime.channel.get", "GET", "/v1/realtime/channel/get/{channel}", false;
    CHANNEL_LIST = "realtime.channel.list", "GET", "/v1/realtime/channel/list", false;
    CHANNEL_DELETE = "realtime.channel.delete", "DELETE", "/v1/realtime/channel/delete/{channel}", false;
    CHANNEL_HISTORY = "realtime.channel.history", "GET", "/v1/realtime/channel/history/{channel}", false;
    PUBLISH = "realtime.publish", "POST", "/v1/realtime/publish", false;
    PUBLISH_BATCH = "realtime.publish.batch", "POST", "/v1/realtime/publish/batch", false;
    PRESENCE_GET = "realtime.presence.get", "GET", "/v1/realtime/presence/get/{channel}", false;
    AUTH_SIGN = "realtime.auth.sign", "POST", "/v1/realtime/auth/sign", false;
    EVENT_TYPES = "realtime.event.types", "GET", "/v1/realtime/event/types", false;
    USER_DISCONNECT = "realtime.user.disconnect", "POST", "/v1/realtime/user/disconnect", false;
    USER_MESSAGE_SEND = "realtime.user.message.send", "POST", "/v1/realtime/user/message/send", false;
    USER_COMMAND_SEND = "realtime.user.command.send", "POST", "/v1/realtime/user/command/send", false;
    USER_COMMAND_GET = "realtime.user.command.get", "GET", "/v1/realtime/user/command/get/{command_id}", false;
    ACCOUNT_GET = "account.get", "GET", "/v1/account", false;
    ACCOUNT_TOPUP = "account.topup", "POST", "/v1/account/topup", false;
    TOKEN_ISSUE_ALIAS = "realtime.token.issue.alias", "POST", "/v1/realtime/token", true;
    CHANNEL_CREATE_ALIAS = "realtime.channel.create.alias", "POST", "/v1/realtime/channels", true;
    PRESENCE_GET_ALIAS = "realtime.presence.get.alias", "GET", "/v1/realtime/channels/{channel}/presence", true;
}

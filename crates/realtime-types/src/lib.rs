//! Wire models of the realtime contract, and nothing else.
//!
//! Every JSON body that crosses the REST API or the WebSocket gateway is defined here:
//! requests, responses, RFC 9457 problem details and the WebSocket frames. This crate
//! knows nothing of HTTP, databases or the environment; the router, the server and the
//! clients all share these types, so a shape can only change in one place.
//!
//! - [`limits`]: the documented limits, and [`validate`] which applies them; [`integer`]
//!   reads integer fields as JSON Schema does (`1.0` is an integer).
//! - [`problem`]: [`ErrorCode`] and the [`Problem`] body.
//! - [`token`], [`channel`], [`history`], [`publish`], [`presence`], [`auth_sign`],
//!   [`events`], [`user`], [`account`]: one module per capability group of the REST contract.
//! - [`time`]: timestamps as the wire carries them.
//! - [`ws`]: the WebSocket protocol (client frames, server frames, close codes).
//! - [`pusher`]: the Pusher-compatible face (Pusher's HTTP API and protocol 7).

pub mod account;
pub mod auth_sign;
pub mod channel;
pub mod events;
pub mod history;
pub mod integer;
pub mod limits;
pub mod messaging;
pub mod presence;
pub mod problem;
pub mod publish;
pub mod pusher;
pub mod time;
pub mod token;
pub mod user;
pub mod validate;
pub mod ws;

pub use account::{Account, Checkout, CheckoutStatus, TopupRequest};
pub use auth_sign::{AblyTokenRequest, AuthSignRequest, Vendor, VendorToken};
pub use channel::{
    Channel, ChannelCreateRequest, ChannelCreated, ChannelDeleted, ChannelList, ChannelListQuery, ChannelType,
    DeleteStatus,
};
pub use events::{EventType, EventTypes};
pub use history::{Direction, History, HistoryMessage, HistoryQuery, Position, RecoveryFailure};
pub use messaging::{
    CommandStatus, Delivery, SenderType, UserCommand, UserCommandSendRequest, UserMessageSendRequest, UserMessageSent,
};
pub use presence::{Presence, PresenceMember};
pub use problem::{ErrorCode, FieldError, Problem};
pub use publish::{BatchMessage, BatchPublished, PublishBatchRequest, PublishRequest, Published};
pub use token::{Capability, RealtimeToken, TokenIssueRequest, TokenRevokeRequest, TokenRevoked};
pub use user::{UserDisconnectRequest, UserDisconnected};
pub use validate::{Rejection, Validate};

//! The command line: every command, its arguments, and an example for each.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Connection settings come from flags, then REALTIME_URL / REALTIME_API_KEY /
REALTIME_ADMIN_SECRET, then the config file (--config, or
~/.config/realtime/config.toml), a TOML file with the keys url, api_key and
admin_secret.

Output is a table for people; --json prints the response bodies as JSON.
Exit codes: 0 ok, 1 the server answered with a problem, 2 bad usage,
3 the server could not be reached, 4 the answer did not match the contract.

Example session:
  realtime serve                                   # terminal 1: the reference server
  export REALTIME_API_KEY=ifr_pk_proj_…            # the key `serve` printed
  realtime channel create room-42
  realtime subscribe room-42                       # terminal 2: JSON lines until Ctrl-C
  realtime publish room-42 message '{\"text\":\"hi\"}'  # terminal 3";

/// `realtime`: publish, subscribe and manage a realtime server from the shell.
#[derive(Parser)]
#[command(name = "realtime", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command accepts. No `Debug`: it holds the API key.
#[derive(Args)]
pub(crate) struct GlobalArgs {
    /// Base URL of the server [default: http://127.0.0.1:8080].
    #[arg(long, global = true, env = "REALTIME_URL", value_name = "URL")]
    pub(crate) url: Option<String>,
    /// API key (ifr_pk_…).
    #[arg(long, global = true, env = "REALTIME_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub(crate) api_key: Option<String>,
    /// TOML file with url, api_key and admin_secret [default: ~/.config/realtime/config.toml].
    #[arg(long, global = true, env = "REALTIME_CLI_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print JSON instead of tables (errors become problem+json on stderr).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Seconds one HTTP attempt may take.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) timeout: u64,
    /// Retries of network failures, 5xx and 429 (with the same idempotency key).
    #[arg(long, global = true, default_value_t = 3, value_name = "N")]
    pub(crate) retries: u32,
}

/// The idempotency key of a command that changes state.
#[derive(Debug, Args)]
pub(crate) struct WriteArgs {
    /// Idempotency key; repeating the command with the same key replays the first answer
    /// [default: a fresh ULID, reused by retries].
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the reference server (one node, SQLite) until Ctrl-C.
    #[command(after_help = "Example:\n  realtime serve\n  REALTIME_LISTEN=127.0.0.1:9000 realtime serve server.toml")]
    Serve {
        /// The server's TOML config file [default: ./realtime.toml when it exists].
        server_config: Option<PathBuf>,
    },
    /// Create an account (admin), or show or top up yours.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Issue or revoke client tokens for the WebSocket gateway.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, inspect, list and delete channels.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Publish one event (data as an argument, or JSON on stdin).
    #[command(
        after_help = "Examples:\n  realtime publish room-42 message '{\"text\":\"hi\"}'\n  echo '{\"n\":1}' | realtime publish room-42 tick\n  realtime publish room-42 note 'plain words' --string"
    )]
    Publish {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The data, as JSON; `-` or absent reads stdin.
        data: Option<String>,
        /// Send the data as a JSON string instead of parsing it.
        #[arg(long)]
        string: bool,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Publish JSON lines from stdin ({"channel","event","data"} each), 100 per request.
    #[command(
        after_help = "Example:\n  printf '%s\\n' '{\"channel\":\"room-42\",\"event\":\"a\",\"data\":1}' \\\n                '{\"channel\":\"room-42\",\"event\":\"b\",\"data\":2}' | realtime batch"
    )]
    Batch {
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show a channel's recent messages, oldest first (or newest first with --backward).
    #[command(
        after_help = "Examples:\n  realtime history room-42\n  realtime history room-42 --since 40 --limit 10\n  realtime history room-42 --backward --limit 5"
    )]
    History {
        /// The channel.
        channel: String,
        /// Start after this offset (before it with --backward).
        #[arg(long)]
        since: Option<u64>,
        /// At most this many messages (1-100) [default: 50].
        #[arg(long)]
        limit: Option<u32>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
    },
    /// Show the live members of a channel.
    #[command(after_help = "Example:\n  realtime presence room-42")]
    Presence {
        /// The channel.
        channel: String,
    },
    /// Send a message or a command to a user (every live connection of their user id).
    #[command(subcommand)]
    User(UserSubcommand),
    /// Close a client's sockets, or with --channel unsubscribe it from one channel.
    #[command(after_help = "Examples:\n  realtime disconnect user_42\n  realtime disconnect user_42 --channel room-42")]
    Disconnect {
        /// The client id.
        client_id: String,
        /// Only unsubscribe from this channel.
        #[arg(long)]
        channel: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Stream a channel's live events to stdout as JSON lines until Ctrl-C.
    #[command(
        after_help = "Examples:\n  realtime subscribe room-42\n  realtime subscribe room-42 lobby --client-id dash --presence\n  realtime subscribe room-42 --count 1   # exit after the first message\n  realtime subscribe --user-id user_123 --ack --answer 'jq -c .data'"
    )]
    Subscribe {
        /// The channels (none: only the user's messages and commands, with --user-id).
        #[arg(required_unless_present = "user_id")]
        channels: Vec<String>,
        /// The client id of the token [default: generated by the server].
        #[arg(long)]
        client_id: Option<String>,
        /// The user id of the token.
        #[arg(long)]
        user_id: Option<String>,
        /// Join the presence set of presence channels.
        #[arg(long)]
        presence: bool,
        /// Exit after this many `message` events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Acknowledge each reliable `user.message` once it is printed.
        #[arg(long, requires = "user_id")]
        ack: bool,
        /// Answer each `user.command` with this program's output (JSON), run through `sh -c`
        /// with the command frame as JSON on its stdin.
        #[arg(long, value_name = "PROGRAM", requires = "user_id")]
        answer: Option<String>,
    },
    /// Sign a vendor-native channel authorization (Pusher, Ably, Liveblocks, realtime).
    #[command(subcommand)]
    Auth(AuthCommand),
    /// List the event types a subscriber can receive.
    #[command(after_help = "Example:\n  realtime events")]
    Events,
    /// Certify the server at --url (with --api-key) against the contract: the conformance
    /// harness. Exit status: 0 every check passed, 1 a check failed, 2 the run could not start.
    #[command(
        after_help = "Examples:\n  realtime conformance --reference      # a fresh in-process reference server\n  \
                            realtime conformance --zero-credit-api-key ifr_pk_… --junit report.xml --seed 42"
    )]
    Conformance(Box<ConformanceArgs>),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  realtime completions bash > ~/.local/share/bash-completion/completions/realtime"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Options of `realtime conformance`: the harness's own flags (the same as
/// `cargo xtask conformance` and `realtime-conformance`), where --base-url and --api-key
/// default to --url and the API key of the settings. No `Debug`: it holds API keys.
#[derive(Args)]
pub(crate) struct ConformanceArgs {
    /// Start a reference server in a temporary directory and certify it instead.
    #[arg(long)]
    pub(crate) reference: bool,
    #[command(flatten)]
    pub(crate) flags: realtime_conformance::cli::Flags,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserSubcommand {
    /// Send a message to a user: realtime (lost when they are offline) or --reliable
    /// (kept and delivered until acknowledged).
    #[command(
        after_help = "Examples:\n  realtime user send user_123 '{\"type\":\"hello\"}'\n  realtime user send user_123 '{\"n\":1}' --reliable --sender-id backend_1"
    )]
    Send {
        /// The user id.
        user_id: String,
        /// The payload, as JSON; `-` or absent reads stdin.
        payload: Option<String>,
        /// At least once: stored and delivered until a client acks it.
        #[arg(long)]
        reliable: bool,
        /// Who sends it.
        #[arg(long)]
        sender_id: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Send a command to a user and print the first response (or --no-wait).
    #[command(
        after_help = "Examples:\n  realtime user command user_123 CREATE_CANVAS '{\"w\":3}' --command-timeout 30\n  realtime user command user_123 SYNC '{}' --no-wait"
    )]
    Command {
        /// The user id.
        user_id: String,
        /// The command's type.
        command_type: String,
        /// The data, as JSON; `-` or absent reads stdin.
        data: Option<String>,
        /// Seconds the command can be answered (1-1800; the call waits at most 25).
        #[arg(long, value_name = "SECONDS")]
        command_timeout: Option<u32>,
        /// Print the pending command at once instead of waiting for the response.
        #[arg(long)]
        no_wait: bool,
        /// Who sends it.
        #[arg(long)]
        sender_id: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account with the admin API; prints its API key (shown once).
    #[command(after_help = "Example:\n  REALTIME_ADMIN_SECRET=… realtime account create --balance 5000000")]
    Create {
        /// Starting credit, in micro-USD (1 USD = 1000000).
        #[arg(long, default_value_t = 0)]
        balance: i64,
        /// The server's admin secret.
        #[arg(long, env = "REALTIME_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: Option<String>,
    },
    /// Give an account a Pusher app (admin API): Pusher libraries then use its id, key and
    /// secret against this server. Prints the secret (shown once).
    #[command(
        after_help = "Examples:\n  REALTIME_ADMIN_SECRET=… realtime account pusher-app --account-id acct_01…\n  REALTIME_ADMIN_SECRET=… realtime account pusher-app --account-id acct_01… --app-id 123456 --key key1 --secret secret1   # keep your Pusher credentials"
    )]
    PusherApp {
        /// The account whose channels and credit the app uses.
        #[arg(long)]
        account_id: String,
        /// A numeric app id [default: generated].
        #[arg(long)]
        app_id: Option<u64>,
        /// The app key [default: generated].
        #[arg(long)]
        key: Option<String>,
        /// The app secret [default: generated].
        #[arg(long)]
        secret: Option<String>,
        /// Where the app's webhooks go (signed with its secret, as Pusher signs them).
        #[arg(long)]
        webhook_url: Option<String>,
        /// Count its channels' subscribers (`pusher_internal:subscription_count` and its
        /// webhook), as a Pusher app that enables subscription counting.
        #[arg(long)]
        subscription_count: bool,
        /// Send its webhooks due together in one request, as a Pusher app that enables
        /// batched webhooks.
        #[arg(long)]
        batch_webhooks: bool,
        /// The server's admin secret.
        #[arg(long, env = "REALTIME_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: Option<String>,
    },
    /// List an account's Pusher apps (admin API); their secrets are not shown.
    #[command(after_help = "Example:\n  REALTIME_ADMIN_SECRET=… realtime account pusher-apps --account-id acct_01…")]
    PusherApps {
        /// The account.
        #[arg(long)]
        account_id: String,
        /// The server's admin secret.
        #[arg(long, env = "REALTIME_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: Option<String>,
    },
    /// Give a Pusher app a new generated secret (admin API), printed once; signatures made
    /// with the old one are refused at once.
    #[command(after_help = "Example:\n  REALTIME_ADMIN_SECRET=… realtime account pusher-app-rotate --app-id 123456")]
    PusherAppRotate {
        /// The app.
        #[arg(long)]
        app_id: u64,
        /// The server's admin secret.
        #[arg(long, env = "REALTIME_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: Option<String>,
    },
    /// Change a Pusher app's settings (admin API): subscription counting and batched
    /// webhooks on or off; a setting not given stays.
    #[command(
        after_help = "Example:\n  REALTIME_ADMIN_SECRET=… realtime account pusher-app-set --app-id 123456 --subscription-count true",
        group(clap::ArgGroup::new("setting").required(true).multiple(true).args(["subscription_count", "batch_webhooks"]))
    )]
    PusherAppSet {
        /// The app.
        #[arg(long)]
        app_id: u64,
        /// Count its channels' subscribers (true or false).
        #[arg(long)]
        subscription_count: Option<bool>,
        /// Send its webhooks due together in one request (true or false).
        #[arg(long)]
        batch_webhooks: Option<bool>,
        /// The server's admin secret.
        #[arg(long, env = "REALTIME_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: Option<String>,
    },
    /// Delete a Pusher app (admin API): its sockets close with 4001, its key and HTTP API
    /// are refused. The account and its channels stay.
    #[command(after_help = "Example:\n  REALTIME_ADMIN_SECRET=… realtime account pusher-app-delete --app-id 123456")]
    PusherAppDelete {
        /// The app.
        #[arg(long)]
        app_id: u64,
        /// The server's admin secret.
        #[arg(long, env = "REALTIME_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: Option<String>,
    },
    /// Show your account and its balance.
    #[command(after_help = "Example:\n  realtime account show")]
    Show,
    /// Start a top-up and print the checkout URL to pay at.
    #[command(after_help = "Example:\n  realtime account topup --amount 5000000   # $5")]
    Topup {
        /// Amount in micro-USD, from 1000000 ($1) to 1000000000 ($1000).
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a client token for the WebSocket gateway.
    #[command(
        after_help = "Example:\n  realtime token issue --client-id user_42 --channel room-42 --capability subscribe --capability presence"
    )]
    Issue {
        /// The client id [default: the user id, or generated].
        #[arg(long)]
        client_id: Option<String>,
        /// The user id.
        #[arg(long)]
        user_id: Option<String>,
        /// A channel the token may use (repeat; none means every channel).
        #[arg(long = "channel", value_name = "CHANNEL")]
        channels: Vec<String>,
        /// A capability (repeat) [default: subscribe].
        #[arg(long = "capability", value_enum, value_name = "CAPABILITY")]
        capabilities: Vec<CapabilityArg>,
        /// Lifetime in seconds (clamped to 86400).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u32>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Revoke a token (the whole token or its jti); its sockets are closed.
    #[command(after_help = "Example:\n  realtime token revoke 01JD2Q7W3M5X8Y9Z0A1B2C3D4E")]
    Revoke {
        /// The token or its jti.
        token_or_jti: String,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChannelCommand {
    /// Create a channel (creating an existing one of the same type is not an error).
    #[command(after_help = "Example:\n  realtime channel create room-42 --type presence")]
    Create {
        /// The channel name.
        name: String,
        /// The channel type.
        #[arg(long = "type", value_enum, default_value_t = ChannelTypeArg::Public)]
        channel_type: ChannelTypeArg,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show a channel and its live state.
    #[command(after_help = "Example:\n  realtime channel get room-42")]
    Get {
        /// The channel name.
        name: String,
    },
    /// List channels, a page at a time (or --all).
    #[command(after_help = "Examples:\n  realtime channel list\n  realtime channel list --all --json")]
    List {
        /// Page size (1-100).
        #[arg(long)]
        limit: Option<u32>,
        /// The next_cursor of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursor to the end (at most 1000 pages).
        #[arg(long, conflicts_with = "cursor")]
        all: bool,
    },
    /// Delete a channel; its subscribers are unsubscribed.
    #[command(after_help = "Example:\n  realtime channel delete room-42")]
    Delete {
        /// The channel name.
        name: String,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthCommand {
    /// Sign a channel authorization for a client.
    #[command(
        after_help = "Example:\n  realtime auth sign --client-id user_42 --channel private-room --vendor pusher --socket-id 1234.5678"
    )]
    Sign {
        /// The client the authorization is for.
        #[arg(long)]
        client_id: String,
        /// A channel to authorize (repeat; Pusher signs the first).
        #[arg(long = "channel", value_name = "CHANNEL", required = true)]
        channels: Vec<String>,
        /// A capability (repeat) [default: subscribe].
        #[arg(long = "capability", value_enum, value_name = "CAPABILITY")]
        capabilities: Vec<CapabilityArg>,
        /// The protocol to sign for [default: the server's].
        #[arg(long, value_enum)]
        vendor: Option<VendorArg>,
        /// Lifetime in seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u32>,
        /// Pusher: the client's socket id.
        #[arg(long)]
        socket_id: Option<String>,
        /// Pusher presence channels: the member's channel_data, as a JSON object.
        #[arg(long, value_name = "JSON")]
        channel_data: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
}

/// `realtime_types::Capability` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CapabilityArg {
    Subscribe,
    Publish,
    Presence,
}

impl From<CapabilityArg> for realtime_types::Capability {
    fn from(arg: CapabilityArg) -> Self {
        match arg {
            CapabilityArg::Subscribe => realtime_types::Capability::Subscribe,
            CapabilityArg::Publish => realtime_types::Capability::Publish,
            CapabilityArg::Presence => realtime_types::Capability::Presence,
        }
    }
}

/// `realtime_types::ChannelType` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ChannelTypeArg {
    Public,
    Private,
    Presence,
}

impl From<ChannelTypeArg> for realtime_types::ChannelType {
    fn from(arg: ChannelTypeArg) -> Self {
        match arg {
            ChannelTypeArg::Public => realtime_types::ChannelType::Public,
            ChannelTypeArg::Private => realtime_types::ChannelType::Private,
            ChannelTypeArg::Presence => realtime_types::ChannelType::Presence,
        }
    }
}

/// `realtime_types::Vendor` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VendorArg {
    Realtime,
    Pusher,
    Ably,
    Liveblocks,
}

impl From<VendorArg> for realtime_types::Vendor {
    fn from(arg: VendorArg) -> Self {
        match arg {
            VendorArg::Realtime => realtime_types::Vendor::Realtime,
            VendorArg::Pusher => realtime_types::Vendor::Pusher,
            VendorArg::Ably => realtime_types::Vendor::Ably,
            VendorArg::Liveblocks => realtime_types::Vendor::Liveblocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example_in_its_help() {
        fn check(command: &clap::Command, path: &str) {
            let path = format!("{path} {}", command.get_name());
            if command.has_subcommands() {
                for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
                    check(sub, &path);
                }
            } else {
                let help = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(help.contains("Example"), "`{path}` has no example in its help");
            }
        }
        let cli = Cli::command();
        for sub in cli.get_subcommands().filter(|sub| sub.get_name() != "help") {
            check(sub, "realtime");
        }
    }
}

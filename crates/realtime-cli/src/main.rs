//! `realtime`: the command line of the realtime contract, for people and scripts.
//!
//! Every operation of the contract is a command; `serve` runs the reference server,
//! `subscribe` streams live events and `conformance` certifies a server. [`cli`] defines
//! the command line, [`settings`] merges flags, environment and config file,
//! [`commands`] and [`subscribe`] call the typed client, [`local`] runs server-side code
//! in this process, and [`output`] prints tables, JSON and problems.

mod admin;
mod cli;
mod commands;
mod local;
mod output;
mod settings;
mod subscribe;

use clap::{CommandFactory, Parser};

use crate::cli::{AccountCommand, Cli, Command};
use crate::output::Output;
use crate::settings::Settings;

fn main() {
    let cli = Cli::parse();
    let json = cli.global.json;
    let outcome =
        tokio::runtime::Runtime::new().map_err(anyhow::Error::from).and_then(|runtime| runtime.block_on(run(cli)));
    if let Err(error) = outcome {
        output::report(&error, json);
        std::process::exit(output::exit_code(&error));
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let admin_secret = match &cli.command {
        Command::Account(
            AccountCommand::Create { admin_secret, .. }
            | AccountCommand::PusherApp { admin_secret, .. }
            | AccountCommand::PusherApps { admin_secret, .. }
            | AccountCommand::PusherAppRotate { admin_secret, .. }
            | AccountCommand::PusherAppSet { admin_secret, .. }
            | AccountCommand::PusherAppDelete { admin_secret, .. },
        ) => admin_secret.clone(),
        _ => None,
    };
    let settings = Settings::load(&cli.global, admin_secret)?;
    let out = Output { json: cli.global.json };
    match cli.command {
        Command::Serve { server_config } => local::serve(server_config).await,
        Command::Account(command) => commands::account(&settings, out, command).await,
        Command::Token(command) => commands::token(&settings.client()?, out, command).await,
        Command::Channel(command) => commands::channel(&settings.client()?, out, command).await,
        Command::Publish { channel, event, data, string, write } => {
            commands::publish(&settings.client()?, out, channel, event, data, string, write).await
        }
        Command::Batch { write } => commands::batch(&settings.client()?, out, write).await,
        Command::History { channel, since, limit, backward } => {
            commands::history(&settings.client()?, out, channel, since, limit, backward).await
        }
        Command::User(command) => commands::user(&settings.client()?, out, command).await,
        Command::Presence { channel } => commands::presence(&settings.client()?, out, channel).await,
        Command::Disconnect { client_id, channel, write } => {
            commands::disconnect(&settings.client()?, out, client_id, channel, write).await
        }
        Command::Subscribe { channels, client_id, user_id, presence, count, ack, answer } => {
            let args = subscribe::SubscribeArgs { channels, client_id, user_id, presence, count, ack, answer };
            subscribe::run(settings.client()?, args).await
        }
        Command::Auth(command) => commands::auth(&settings.client()?, out, command).await,
        Command::Events => commands::events(&settings.client()?, out).await,
        Command::Conformance(args) => local::conformance(&settings, *args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "realtime", &mut std::io::stdout());
            Ok(())
        }
    }
}

//! The contract's operations, implemented on the [`Service`].

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::Utc;
use realtime_api::idempotency::Seal;
use realtime_api::{ApiError, ApiKey, Caller, RealtimeApi};
use realtime_types::limits::{DEFAULT_TTL_SECONDS, HISTORY_DEFAULT_LIMIT, MAX_TTL_SECONDS, PAGE_DEFAULT_LIMIT};
use realtime_types::*;

use super::{Service, hash_api_key, new_id};
use crate::broker::ClusterEvent;
use crate::config::PusherConfig;
use crate::hub::ChannelKey;
use crate::store::{ChannelRow, CheckoutRow, TokenRow};
use crate::tokens::Claims;
use crate::vendors;

/// Clamps a requested lifetime to `[1, MAX_TTL_SECONDS]`, defaulting to an hour.
fn clamp_ttl(ttl: Option<u32>) -> u32 {
    ttl.unwrap_or(DEFAULT_TTL_SECONDS).clamp(1, MAX_TTL_SECONDS)
}

/// Capabilities, sorted and without repeats; `subscribe` when none are asked for.
fn capabilities(requested: Option<Vec<Capability>>) -> Vec<Capability> {
    let mut capabilities = requested.filter(|c| !c.is_empty()).unwrap_or_else(|| vec![Capability::Subscribe]);
    capabilities.sort_unstable();
    capabilities.dedup();
    capabilities
}

/// What a new gateway token allows.
struct Grant {
    client_id: String,
    user_id: Option<String>,
    channels: Option<Vec<String>>,
    capabilities: Vec<Capability>,
    ttl_seconds: u32,
}

impl Service {
    async fn existing_channel(&self, caller: &Caller, name: &str) -> Result<ChannelRow, ApiError> {
        if validate::check_channel_name(name).is_err() {
            return Err(ApiError::not_found(format!("channel {name:?} does not exist")));
        }
        self.store
            .channel(&caller.account_id, name)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| ApiError::not_found(format!("channel {name:?} does not exist")))
    }

    async fn channel_view(&self, row: ChannelRow) -> Result<Channel, ApiError> {
        let key = ChannelKey::new(&row.account_id, &row.name);
        let subscriber_count = self.broker.subscriber_count(&key).await.map_err(|e| self.broker_error(e))?;
        let member_count = match row.channel_type {
            ChannelType::Presence => {
                Some(self.broker.members(&key).await.map_err(|e| self.broker_error(e))?.len() as u32)
            }
            ChannelType::Public | ChannelType::Private => None,
        };
        Ok(Channel {
            channel_id: row.channel_id,
            name: row.name,
            channel_type: row.channel_type,
            vendor: Vendor::Realtime,
            created_at: row.created_at,
            member_count,
            subscriber_count,
            last_published_at: row.last_published_at,
        })
    }

    /// Signs a gateway token for `grant` (nothing is recorded yet).
    fn sign_token(&self, caller: &Caller, grant: Grant) -> (Claims, String) {
        let Grant { client_id, user_id, channels, capabilities, ttl_seconds } = grant;
        let claims =
            Claims::new(&caller.account_id, client_id, user_id, channels, capabilities, Utc::now(), ttl_seconds);
        let token = self.tokens.sign(&claims);
        (claims, token)
    }

    /// Records an issued token and charges `price`, committing `answer` with it.
    async fn record_token(
        &self,
        caller: &Caller,
        claims: &Claims,
        price: i64,
        operation: &str,
        answer: &impl serde::Serialize,
    ) -> Result<(), ApiError> {
        let row = TokenRow {
            jti: claims.jti.clone(),
            account_id: caller.account_id.clone(),
            client_id: claims.sub.clone(),
            expires_at: claims.expires_at(),
        };
        let seal = Seal::current(answer);
        self.store.record_token(&row, price, seal.as_ref()).await.map_err(|e| self.charge_error(operation, e))?;
        self.charged(price);
        Ok(())
    }

    /// Charges `price` for a signature, committing `answer` with the charge.
    async fn charge_signature(&self, caller: &Caller, answer: &VendorToken) -> Result<(), ApiError> {
        let seal = Seal::current(answer);
        self.store
            .charge(&caller.account_id, self.config.prices.auth_sign, seal.as_ref())
            .await
            .map_err(|e| self.charge_error("signing", e))?;
        self.charged(self.config.prices.auth_sign);
        Ok(())
    }
}

#[async_trait]
impl RealtimeApi for Service {
    async fn authenticate(&self, key: &ApiKey) -> Result<Caller, ApiError> {
        let hash = hash_api_key(key.expose());
        let known = self.known_keys.lock().expect("known keys lock").get(&hash).cloned();
        let account_id = match known {
            Some(account_id) => account_id,
            // Keys carry 160 random bits and are looked up by their SHA-256, so the lookup
            // reveals nothing about a stored key through its timing.
            None => {
                let account = self.store.account_by_key_hash(&hash).await.map_err(|e| self.store_error(e))?;
                let Some(account) = account else {
                    return Err(ApiError::unauthenticated("the API key is not valid"));
                };
                let mut known = self.known_keys.lock().expect("known keys lock");
                if known.len() >= super::KNOWN_KEYS_BOUND {
                    known.clear();
                }
                known.insert(hash, account.account_id.clone());
                account.account_id
            }
        };
        // The request's log lines name the account (never the key).
        tracing::Span::current().record("account_id", account_id.as_str());
        self.check_rate(&account_id)?;
        Ok(Caller { account_id })
    }

    async fn token_issue(&self, caller: &Caller, request: TokenIssueRequest) -> Result<RealtimeToken, ApiError> {
        let client_id = request
            .client_id
            .clone()
            .or_else(|| request.user_id.clone())
            .unwrap_or_else(|| format!("anon_{}", ulid::Ulid::generate()));
        let user_id = request.user_id.clone().or_else(|| request.client_id.clone());
        let grant = Grant {
            client_id,
            user_id,
            channels: request.channels,
            capabilities: capabilities(request.capabilities),
            ttl_seconds: clamp_ttl(request.ttl_seconds),
        };
        let (claims, token) = self.sign_token(caller, grant);
        let issued = RealtimeToken {
            token,
            client_id: claims.sub.clone(),
            user_id: claims.uid.clone(),
            jti: claims.jti.clone(),
            expires_at: claims.expires_at(),
            endpoint: self.endpoint(),
            channels: claims.chs.clone(),
            capabilities: claims.caps.clone(),
        };
        self.record_token(caller, &claims, self.config.prices.token_issue, "issuing a token", &issued).await?;
        Ok(issued)
    }

    async fn token_revoke(&self, caller: &Caller, request: TokenRevokeRequest) -> Result<TokenRevoked, ApiError> {
        let jti = if request.token_or_jti.matches('.').count() == 2 {
            self.tokens
                .verify_ignoring_expiry(&request.token_or_jti)
                .map_err(|_| ApiError::not_found("the token was not issued by this server"))?
                .jti
        } else {
            request.token_or_jti.clone()
        };
        let token = self.store.token(&caller.account_id, &jti).await.map_err(|e| self.store_error(e))?;
        if token.is_none() {
            return Err(ApiError::not_found("no token with this jti was issued by this account"));
        }
        self.require_broker().await?;
        // Not sealed: revoking is free and revoking again changes nothing, so a retry
        // after a crash may simply run again.
        self.store.revoke_token(&caller.account_id, &jti).await.map_err(|e| self.store_error(e))?;
        // Unlike other effects, a revocation that did not reach the live sockets is
        // answered 503: retrying it is free and harmless, and it must reach them.
        let disconnected = self
            .broker
            .publish(ClusterEvent::TokenRevoked { jti: jti.clone() })
            .await
            .map_err(|e| self.broker_error(e))?;
        self.hub.taps.activity(&caller.account_id, || crate::hub::tap::Activity::TokenRevoked {
            jti: jti.clone(),
            disconnected,
        });
        Ok(TokenRevoked { revoked: true, jti, disconnected })
    }

    async fn channel_create(&self, caller: &Caller, request: ChannelCreateRequest) -> Result<ChannelCreated, ApiError> {
        let channel_type = request.channel_type.unwrap_or_default();
        let row = ChannelRow {
            channel_id: new_id("ch"),
            account_id: caller.account_id.clone(),
            name: request.name,
            channel_type,
            created_at: Utc::now(),
            last_published_at: None,
            last_offset: 0,
        };
        let answer =
            ChannelCreated { channel_id: row.channel_id.clone(), name: row.name.clone(), channel_type, created: true };
        let seal = Seal::current(&answer);
        let (row, created) = self
            .store
            .create_channel(&row, self.config.prices.channel_create, seal.as_ref())
            .await
            .map_err(|e| self.charge_error("creating a channel", e))?;
        if created {
            self.charged(self.config.prices.channel_create);
        }
        if row.channel_type != channel_type {
            return Err(ApiError::conflict(format!(
                "channel {:?} exists with type {}; delete it first to change its type",
                row.name,
                row.channel_type.as_str()
            )));
        }
        Ok(ChannelCreated { channel_id: row.channel_id, name: row.name, channel_type: row.channel_type, created })
    }

    async fn channel_get(&self, caller: &Caller, channel: String) -> Result<Channel, ApiError> {
        let row = self.existing_channel(caller, &channel).await?;
        self.channel_view(row).await
    }

    async fn channel_list(&self, caller: &Caller, query: ChannelListQuery) -> Result<ChannelList, ApiError> {
        // A cursor is the base64url of the last name of a page. The router has checked its
        // form, and the document promises that any string of that form is a position in the
        // list, so stray bits and bytes that are not UTF-8 are tolerated rather than refused.
        let after = match &query.cursor {
            Some(cursor) => {
                let lenient = GeneralPurpose::new(
                    &base64::alphabet::URL_SAFE,
                    GeneralPurposeConfig::new()
                        .with_decode_allow_trailing_bits(true)
                        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
                );
                let bytes = lenient.decode(cursor).map_err(|_| {
                    ApiError::invalid(vec![FieldError::new("/cursor", "is not a cursor returned by channel.list")])
                })?;
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            None => None,
        };
        let limit = query.limit.unwrap_or(PAGE_DEFAULT_LIMIT);
        let mut rows = self
            .store
            .list_channels(&caller.account_id, after.as_deref(), limit + 1)
            .await
            .map_err(|e| self.store_error(e))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = more.then(|| URL_SAFE_NO_PAD.encode(rows.last().map(|r| r.name.as_str()).unwrap_or("")));
        let mut channels = Vec::with_capacity(rows.len());
        for row in rows {
            channels.push(self.channel_view(row).await?);
        }
        Ok(ChannelList { channels, next_cursor })
    }

    async fn channel_delete(&self, caller: &Caller, channel: String) -> Result<ChannelDeleted, ApiError> {
        let row = self.existing_channel(caller, &channel).await?;
        self.require_broker().await?;
        let answer =
            ChannelDeleted { channel: row.name.clone(), deleted: true, status: DeleteStatus::Deleted, unsubscribed: 0 };
        let seal = Seal::current(&answer);
        let deleted = self
            .store
            .delete_channel(&caller.account_id, &row.name, seal.as_ref())
            .await
            .map_err(|e| self.store_error(e))?;
        if !deleted {
            return Err(ApiError::not_found(format!("channel {:?} does not exist", row.name)));
        }
        let unsubscribed =
            self.announce(ClusterEvent::ChannelDeleted { key: ChannelKey::new(&caller.account_id, &row.name) }).await;
        Ok(ChannelDeleted { unsubscribed, ..answer })
    }

    async fn channel_history(
        &self,
        caller: &Caller,
        channel: String,
        query: HistoryQuery,
    ) -> Result<History, ApiError> {
        let row = self.existing_channel(caller, &channel).await?;
        let limit = query.limit.unwrap_or(HISTORY_DEFAULT_LIMIT);
        let direction = query.direction.unwrap_or_default();
        let mut rows = self
            .store
            .history(&caller.account_id, &row.name, query.since, limit + 1, direction)
            .await
            .map_err(|e| self.store_error(e))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_since = rows.last().filter(|_| more).map(|last| last.offset);
        let messages = rows
            .into_iter()
            .map(|message| HistoryMessage {
                data: serde_json::from_str(&message.data).unwrap_or(serde_json::Value::Null),
                message_id: message.message_id,
                offset: message.offset,
                event: message.event,
                published_at: message.published_at,
            })
            .collect();
        Ok(History { epoch: row.channel_id, latest_offset: row.last_offset, channel: row.name, messages, next_since })
    }

    async fn publish(&self, caller: &Caller, request: PublishRequest) -> Result<Published, ApiError> {
        let message = (request.channel, request.event, request.data);
        let mut published =
            self.publish_sealed(&caller.account_id, vec![message], |published| published[0].clone()).await?;
        Ok(published.remove(0))
    }

    async fn publish_batch(&self, caller: &Caller, request: PublishBatchRequest) -> Result<BatchPublished, ApiError> {
        let messages = request.messages.into_iter().map(|m| (m.channel, m.event, m.data)).collect();
        let answer =
            |messages: &[Published]| BatchPublished { published: messages.len() as u32, messages: messages.to_vec() };
        let messages = self.publish_sealed(&caller.account_id, messages, answer).await?;
        Ok(answer(&messages))
    }

    async fn presence_get(&self, caller: &Caller, channel: String) -> Result<Presence, ApiError> {
        let row = self.existing_channel(caller, &channel).await?;
        let members = match row.channel_type {
            ChannelType::Presence => self
                .broker
                .members(&ChannelKey::new(&caller.account_id, &row.name))
                .await
                .map_err(|e| self.broker_error(e))?,
            ChannelType::Public | ChannelType::Private => Vec::new(),
        };
        Ok(Presence { channel: row.name, count: members.len() as u32, members })
    }

    async fn auth_sign(&self, caller: &Caller, request: AuthSignRequest) -> Result<VendorToken, ApiError> {
        let vendor = request.vendor.unwrap_or(self.config.vendors.default);
        let capabilities = capabilities(request.capabilities);
        let ttl = clamp_ttl(request.ttl_seconds);
        let now = Utc::now();
        // Each vendor's authorization is signed first (signing has no effect), then charged
        // with the signed answer sealed in the same transaction.
        match vendor {
            Vendor::Realtime => {
                let grant = Grant {
                    client_id: request.client_id,
                    user_id: None,
                    channels: Some(request.channels),
                    capabilities,
                    ttl_seconds: ttl,
                };
                let (claims, token) = self.sign_token(caller, grant);
                let answer = VendorToken::Realtime { token, expires_at: claims.expires_at() };
                self.record_token(caller, &claims, self.config.prices.auth_sign, "signing", &answer).await?;
                Ok(answer)
            }
            Vendor::Pusher => {
                let channel = request.channels[0].clone();
                let socket_id = request.socket_id.ok_or_else(|| {
                    ApiError::invalid(vec![FieldError::new("/socket_id", "is required for vendor pusher")])
                })?;
                let channel_data = match (&request.channel_data, channel.starts_with("presence-")) {
                    (Some(data), _) => Some(serde_json::to_string(data).map_err(ApiError::internal)?),
                    (None, true) => {
                        return Err(ApiError::invalid(vec![FieldError::new(
                            "/channel_data",
                            "is required for Pusher presence- channels",
                        )]));
                    }
                    (None, false) => None,
                };
                // Signed with the account's (oldest) Pusher app, whose sockets check it;
                // an account without one gets the configured credentials.
                let apps = self.store.apps_of(&caller.account_id).await.map_err(|e| self.store_error(e))?;
                let credentials = match apps.into_iter().next() {
                    Some(app) => PusherConfig { app_id: app.app_id.to_string(), key: app.key, secret: app.secret },
                    None => self.config.vendors.pusher.clone(),
                };
                let token = vendors::pusher_auth(&credentials, &socket_id, &channel, channel_data.as_deref());
                let answer = VendorToken::Pusher { auth: token.clone(), token, channel, channel_data };
                self.charge_signature(caller, &answer).await?;
                Ok(answer)
            }
            Vendor::Ably => {
                let capability = vendors::ably_capability(&request.channels, &capabilities);
                let token_request = vendors::ably_token_request(
                    &self.config.vendors.ably_key,
                    &request.client_id,
                    capability,
                    ttl,
                    now,
                )
                .map_err(ApiError::internal)?;
                let token = serde_json::to_string(&token_request).map_err(ApiError::internal)?;
                let answer = VendorToken::Ably { token, token_request };
                self.charge_signature(caller, &answer).await?;
                Ok(answer)
            }
            Vendor::Liveblocks => {
                let token = vendors::liveblocks_token(
                    &self.config.vendors.liveblocks,
                    &request.client_id,
                    &request.channels,
                    &capabilities,
                    now,
                    ttl,
                );
                let answer =
                    VendorToken::Liveblocks { token, expires_at: now + chrono::Duration::seconds(i64::from(ttl)) };
                self.charge_signature(caller, &answer).await?;
                Ok(answer)
            }
        }
    }

    async fn event_types(&self, _caller: &Caller) -> Result<EventTypes, ApiError> {
        Ok(EventTypes { types: EventType::ALL.to_vec() })
    }

    async fn user_disconnect(
        &self,
        caller: &Caller,
        request: UserDisconnectRequest,
    ) -> Result<UserDisconnected, ApiError> {
        if let Some(channel) = &request.channel {
            self.existing_channel(caller, channel).await?;
        }
        // Nothing durable happens, so there is nothing to seal: a retry after a crash
        // disconnects again, which is what the caller asked for.
        let event = ClusterEvent::ClientDisconnected {
            account_id: caller.account_id.clone(),
            client_id: request.client_id,
            channel: request.channel,
        };
        let disconnected = self.broker.publish(event).await.map_err(|e| self.broker_error(e))?;
        Ok(UserDisconnected { disconnected })
    }

    async fn user_message_send(
        &self,
        caller: &Caller,
        request: UserMessageSendRequest,
    ) -> Result<UserMessageSent, ApiError> {
        self.send_user_message(caller, request).await
    }

    async fn user_command_send(
        &self,
        caller: &Caller,
        request: UserCommandSendRequest,
    ) -> Result<UserCommand, ApiError> {
        self.send_user_command(caller, request).await
    }

    async fn user_command_get(&self, caller: &Caller, command_id: String) -> Result<UserCommand, ApiError> {
        self.user_command(caller, &command_id).await
    }

    async fn account_get(&self, caller: &Caller) -> Result<Account, ApiError> {
        let account = self
            .store
            .account(&caller.account_id)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| ApiError::unauthenticated("the account no longer exists"))?;
        Ok(Account {
            account_id: account.account_id,
            balance: account.balance,
            currency: "USD".to_owned(),
            topup_url: self.topup_url(),
        })
    }

    async fn account_topup(&self, caller: &Caller, request: TopupRequest) -> Result<Checkout, ApiError> {
        let amount = i64::try_from(request.amount)
            .map_err(|_| ApiError::invalid(vec![FieldError::new("/amount", "is too large")]))?;
        let row = CheckoutRow {
            checkout_id: new_id("co"),
            account_id: caller.account_id.clone(),
            amount,
            completed: false,
            expires_at: Utc::now() + chrono::Duration::hours(24),
        };
        let answer = Checkout {
            checkout_url: format!("{}/checkout/{}", self.public_url, row.checkout_id),
            checkout_id: row.checkout_id.clone(),
            amount: request.amount,
            status: CheckoutStatus::Pending,
            expires_at: row.expires_at,
        };
        let seal = Seal::current(&answer);
        self.store.create_checkout(&row, seal.as_ref()).await.map_err(|e| self.store_error(e))?;
        Ok(answer)
    }
}

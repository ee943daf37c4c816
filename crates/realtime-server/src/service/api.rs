//! The contract's operations, implemented on the [`Service`].

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use realtime_api::{ApiError, ApiKey, Caller, IdempotencyKey, RealtimeApi, Reply};
use realtime_types::limits::{DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, PAGE_DEFAULT_LIMIT};
use realtime_types::*;

use super::idempotency::fingerprint;
use super::{Service, hash_api_key, new_id};
use crate::broker::ClusterEvent;
use crate::gateway::hub::ChannelKey;
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

    /// Issues and records a gateway token, charging `price`.
    async fn issue_token(&self, caller: &Caller, grant: Grant, price: i64) -> Result<(Claims, String), ApiError> {
        let Grant { client_id, user_id, channels, capabilities, ttl_seconds } = grant;
        let claims =
            Claims::new(&caller.account_id, client_id, user_id, channels, capabilities, Utc::now(), ttl_seconds);
        let row = TokenRow {
            jti: claims.jti.clone(),
            account_id: caller.account_id.clone(),
            client_id: claims.sub.clone(),
            expires_at: claims.expires_at(),
        };
        self.store.record_token(&row, price).await.map_err(|e| self.charge_error("issuing a token", e))?;
        let token = self.tokens.sign(&claims);
        Ok((claims, token))
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
        self.check_rate(&account_id)?;
        Ok(Caller { account_id })
    }

    async fn token_issue(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: TokenIssueRequest,
    ) -> Result<Reply<RealtimeToken>, ApiError> {
        let print = fingerprint(&TokenIssueRequest {
            idempotency_key: None,
            capabilities: Some(capabilities(request.capabilities.clone())),
            ..request.clone()
        });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.token.issue", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let client_id = request
                .client_id
                .clone()
                .or_else(|| request.user_id.clone())
                .unwrap_or_else(|| format!("anon_{}", ulid::Ulid::generate()));
            let user_id = request.user_id.clone().or_else(|| request.client_id.clone());
            let capabilities = capabilities(request.capabilities.clone());
            let (claims, token) = this
                .issue_token(
                    caller,
                    Grant {
                        client_id,
                        user_id,
                        channels: request.channels.clone(),
                        capabilities,
                        ttl_seconds: clamp_ttl(request.ttl_seconds),
                    },
                    this.config.prices.token_issue,
                )
                .await?;
            Ok(RealtimeToken {
                token,
                client_id: claims.sub.clone(),
                user_id: claims.uid.clone(),
                jti: claims.jti.clone(),
                expires_at: claims.expires_at(),
                endpoint: this.endpoint(),
                channels: claims.chs.clone(),
                capabilities: claims.caps.clone(),
            })
        })
        .await
    }

    async fn token_revoke(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: TokenRevokeRequest,
    ) -> Result<Reply<TokenRevoked>, ApiError> {
        let print = fingerprint(&TokenRevokeRequest { idempotency_key: None, ..request.clone() });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.token.revoke", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let jti = if request.token_or_jti.matches('.').count() == 2 {
                this.tokens
                    .verify_ignoring_expiry(&request.token_or_jti)
                    .map_err(|_| ApiError::not_found("the token was not issued by this server"))?
                    .jti
            } else {
                request.token_or_jti.clone()
            };
            let token = this.store.token(&caller.account_id, &jti).await.map_err(|e| this.store_error(e))?;
            if token.is_none() {
                return Err(ApiError::not_found("no token with this jti was issued by this account"));
            }
            this.require_broker().await?;
            this.store.revoke_token(&caller.account_id, &jti).await.map_err(|e| this.store_error(e))?;
            // Unlike other effects, a revocation that did not reach the live sockets is
            // answered 503: retrying it is free and harmless, and it must reach them.
            let disconnected = this
                .broker
                .publish(ClusterEvent::TokenRevoked { jti: jti.clone() })
                .await
                .map_err(|e| this.broker_error(e))?;
            Ok(TokenRevoked { revoked: true, jti, disconnected })
        })
        .await
    }

    async fn channel_create(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: ChannelCreateRequest,
    ) -> Result<Reply<ChannelCreated>, ApiError> {
        let print = fingerprint(&ChannelCreateRequest {
            idempotency_key: None,
            channel_type: Some(request.channel_type.unwrap_or_default()),
            ..request.clone()
        });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.channel.create", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let channel_type = request.channel_type.unwrap_or_default();
            let row = ChannelRow {
                channel_id: new_id("ch"),
                account_id: caller.account_id.clone(),
                name: request.name.clone(),
                channel_type,
                created_at: Utc::now(),
                last_published_at: None,
            };
            let (row, created) = this
                .store
                .create_channel(&row, this.config.prices.channel_create)
                .await
                .map_err(|e| this.charge_error("creating a channel", e))?;
            if row.channel_type != channel_type {
                return Err(ApiError::conflict(format!(
                    "channel {:?} exists with type {}; delete it first to change its type",
                    row.name,
                    row.channel_type.as_str()
                )));
            }
            Ok(ChannelCreated { channel_id: row.channel_id, name: row.name, channel_type: row.channel_type, created })
        })
        .await
    }

    async fn channel_get(&self, caller: &Caller, channel: String) -> Result<Channel, ApiError> {
        let row = self.existing_channel(caller, &channel).await?;
        self.channel_view(row).await
    }

    async fn channel_list(&self, caller: &Caller, query: ChannelListQuery) -> Result<ChannelList, ApiError> {
        let after = match &query.cursor {
            Some(cursor) => {
                Some(URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(
                    || ApiError::invalid(vec![FieldError::new("/cursor", "is not a cursor returned by channel.list")]),
                )?)
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

    async fn channel_delete(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        channel: String,
    ) -> Result<Reply<ChannelDeleted>, ApiError> {
        let print = fingerprint(&channel);
        let owner = caller.clone();
        self.idempotent(caller, "realtime.channel.delete", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let row = this.existing_channel(caller, &channel).await?;
            this.require_broker().await?;
            this.store.delete_channel(&caller.account_id, &row.name).await.map_err(|e| this.store_error(e))?;
            let unsubscribed = this
                .announce(ClusterEvent::ChannelDeleted { key: ChannelKey::new(&caller.account_id, &row.name) })
                .await;
            Ok(ChannelDeleted { channel: row.name, deleted: true, status: DeleteStatus::Deleted, unsubscribed })
        })
        .await
    }

    async fn publish(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: PublishRequest,
    ) -> Result<Reply<Published>, ApiError> {
        let print = fingerprint(&PublishRequest { idempotency_key: None, ..request.clone() });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.publish", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let message = (request.channel.clone(), request.event.clone(), request.data.clone());
            let mut published = this.publish_messages(&caller.account_id, vec![message]).await?;
            Ok(published.remove(0))
        })
        .await
    }

    async fn publish_batch(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: PublishBatchRequest,
    ) -> Result<Reply<BatchPublished>, ApiError> {
        let print = fingerprint(&PublishBatchRequest { idempotency_key: None, ..request.clone() });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.publish.batch", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let messages =
                request.messages.iter().map(|m| (m.channel.clone(), m.event.clone(), m.data.clone())).collect();
            let messages = this.publish_messages(&caller.account_id, messages).await?;
            Ok(BatchPublished { published: messages.len() as u32, messages })
        })
        .await
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

    async fn auth_sign(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: AuthSignRequest,
    ) -> Result<Reply<VendorToken>, ApiError> {
        let print = fingerprint(&AuthSignRequest {
            idempotency_key: None,
            capabilities: Some(capabilities(request.capabilities.clone())),
            vendor: Some(request.vendor.unwrap_or(self.config.vendors.default)),
            ..request.clone()
        });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.auth.sign", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let vendor = request.vendor.unwrap_or(this.config.vendors.default);
            let capabilities = capabilities(request.capabilities.clone());
            let ttl = clamp_ttl(request.ttl_seconds);
            let price = this.config.prices.auth_sign;
            let now = Utc::now();
            let token = match vendor {
                Vendor::Realtime => {
                    let (claims, token) = this
                        .issue_token(
                            caller,
                            Grant {
                                client_id: request.client_id.clone(),
                                user_id: None,
                                channels: Some(request.channels.clone()),
                                capabilities,
                                ttl_seconds: ttl,
                            },
                            price,
                        )
                        .await?;
                    VendorToken::Realtime { token, expires_at: claims.expires_at() }
                }
                Vendor::Pusher => {
                    let channel = request.channels[0].clone();
                    let socket_id = request.socket_id.clone().ok_or_else(|| {
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
                    this.store.charge(&caller.account_id, price).await.map_err(|e| this.charge_error("signing", e))?;
                    let token = vendors::pusher_auth(
                        &this.config.vendors.pusher,
                        &socket_id,
                        &channel,
                        channel_data.as_deref(),
                    );
                    VendorToken::Pusher { token, channel, channel_data }
                }
                Vendor::Ably => {
                    let capability = vendors::ably_capability(&request.channels, &capabilities);
                    let token_request = vendors::ably_token_request(
                        &this.config.vendors.ably_key,
                        &request.client_id,
                        capability,
                        ttl,
                        now,
                    )
                    .map_err(ApiError::internal)?;
                    this.store.charge(&caller.account_id, price).await.map_err(|e| this.charge_error("signing", e))?;
                    let token = serde_json::to_string(&token_request).map_err(ApiError::internal)?;
                    VendorToken::Ably { token, token_request }
                }
                Vendor::Liveblocks => {
                    this.store.charge(&caller.account_id, price).await.map_err(|e| this.charge_error("signing", e))?;
                    let token = vendors::liveblocks_token(
                        &this.config.vendors.liveblocks,
                        &request.client_id,
                        &request.channels,
                        &capabilities,
                        now,
                        ttl,
                    );
                    VendorToken::Liveblocks { token, expires_at: now + chrono::Duration::seconds(i64::from(ttl)) }
                }
            };
            Ok(token)
        })
        .await
    }

    async fn event_types(&self, _caller: &Caller) -> Result<EventTypes, ApiError> {
        Ok(EventTypes { types: EventType::ALL.to_vec() })
    }

    async fn user_disconnect(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: UserDisconnectRequest,
    ) -> Result<Reply<UserDisconnected>, ApiError> {
        let print = fingerprint(&UserDisconnectRequest { idempotency_key: None, ..request.clone() });
        let owner = caller.clone();
        self.idempotent(caller, "realtime.user.disconnect", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            if let Some(channel) = &request.channel {
                this.existing_channel(caller, channel).await?;
            }
            let event = ClusterEvent::ClientDisconnected {
                account_id: caller.account_id.clone(),
                client_id: request.client_id.clone(),
                channel: request.channel.clone(),
            };
            let disconnected = this.broker.publish(event).await.map_err(|e| this.broker_error(e))?;
            Ok(UserDisconnected { disconnected })
        })
        .await
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

    async fn account_topup(
        &self,
        caller: &Caller,
        key: Option<IdempotencyKey>,
        request: TopupRequest,
    ) -> Result<Reply<Checkout>, ApiError> {
        let print = fingerprint(&TopupRequest { idempotency_key: None, ..request.clone() });
        let owner = caller.clone();
        self.idempotent(caller, "account.topup", key, print, move |service: Arc<Service>| async move {
            let this = &*service;
            let caller = &owner;
            let row = CheckoutRow {
                checkout_id: new_id("co"),
                account_id: caller.account_id.clone(),
                amount: request.amount as i64,
                completed: false,
                expires_at: Utc::now() + chrono::Duration::hours(24),
            };
            this.store.create_checkout(&row).await.map_err(|e| this.store_error(e))?;
            Ok(Checkout {
                checkout_url: format!("{}/checkout/{}", this.public_url, row.checkout_id),
                checkout_id: row.checkout_id,
                amount: request.amount,
                status: CheckoutStatus::Pending,
                expires_at: row.expires_at,
            })
        })
        .await
    }
}

//! The in-process broker of a single node: events go straight to the local hub and
//! presence is counted in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use realtime_types::PresenceMember;

use super::{Broker, BrokerError, ClusterEvent, announce, apply};
use crate::hub::{ChannelKey, Hub, UserKey};

/// Sockets per member, per channel.
type PresenceCounts = HashMap<ChannelKey, BTreeMap<String, (PresenceMember, u32)>>;

/// The single-node broker.
pub struct MemoryBroker {
    hub: Arc<Hub>,
    presence: Mutex<PresenceCounts>,
}

impl MemoryBroker {
    /// A broker delivering into `hub`.
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(MemoryBroker { hub, presence: Mutex::new(HashMap::new()) })
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A subscriber of the channel, or a viewer of the account's console, on this one node.
    fn has_audience(&self, key: &ChannelKey) -> bool {
        self.hub.has_channel(key) || self.hub.taps.is_watched(&key.account_id)
    }

    async fn publish(&self, event: ClusterEvent) -> Result<u32, BrokerError> {
        let applied = apply(&self.hub, event);
        Ok(announce(self, applied).await)
    }

    async fn join(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().expect("presence lock");
        let members = presence.entry(key.clone()).or_default();
        let entry = members.entry(member.client_id.clone()).or_insert_with(|| (member.clone(), 0));
        entry.1 += 1;
        Ok(entry.1 == 1)
    }

    async fn leave(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().expect("presence lock");
        let Some(members) = presence.get_mut(key) else { return Ok(false) };
        let Some(entry) = members.get_mut(&member.client_id) else { return Ok(false) };
        entry.1 -= 1;
        if entry.1 > 0 {
            return Ok(false);
        }
        members.remove(&member.client_id);
        if members.is_empty() {
            presence.remove(key);
        }
        Ok(true)
    }

    async fn members(&self, key: &ChannelKey) -> Result<Vec<PresenceMember>, BrokerError> {
        let presence = self.presence.lock().expect("presence lock");
        Ok(presence.get(key).map(|m| m.values().map(|(member, _)| member.clone()).collect()).unwrap_or_default())
    }

    async fn subscriber_count(&self, key: &ChannelKey) -> Result<u32, BrokerError> {
        Ok(self.hub.subscriber_count(key))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Every user's frames are this node's.
    async fn open_user_route(&self, _user: &UserKey) -> Result<(), BrokerError> {
        Ok(())
    }
}

//! The Lua scripts of the Redis broker: each is one atomic step across every node.
//!
//! Keys and arguments follow the layout in the parent module. `alive` is the prefix of
//! heartbeat keys (`P:node:`); a presence entry is the JSON `{"m": <member JSON>, "n":
//! [<node ids holding the member's sockets>]}`; a subscriber-count hash maps node ids
//! to counts. Scripts name some keys in `ARGV` (built from the prefix), so they run on a
//! single Redis, not on Redis Cluster.

/// Adds this node to a member's entry; returns 1 when no other live node holds the
/// member (the join is the member's first socket in the cluster).
pub(super) const JOIN: &str = r#"
local hash, owned = KEYS[1], KEYS[2]
local alive, node, client, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nodes, first = {}, 1
local raw = redis.call('HGET', hash, client)
if raw then
  for _, n in ipairs(cjson.decode(raw).n) do
    if n ~= node and redis.call('EXISTS', alive .. n) == 1 then
      table.insert(nodes, n)
      first = 0
    end
  end
end
table.insert(nodes, node)
redis.call('HSET', hash, client, cjson.encode({m = member, n = nodes}))
redis.call('SADD', owned, hash)
return first
"#;

/// Removes this node from a member's entry; returns 1 when no other live node holds the
/// member (the leave is the member's last socket in the cluster).
pub(super) const LEAVE: &str = r#"
local hash = KEYS[1]
local alive, node, client = ARGV[1], ARGV[2], ARGV[3]
local raw = redis.call('HGET', hash, client)
if not raw then return 1 end
local entry, nodes = cjson.decode(raw), {}
for _, n in ipairs(entry.n) do
  if n ~= node and redis.call('EXISTS', alive .. n) == 1 then table.insert(nodes, n) end
end
if #nodes == 0 then
  redis.call('HDEL', hash, client)
  return 1
end
redis.call('HSET', hash, client, cjson.encode({m = entry.m, n = nodes}))
return 0
"#;

/// The members held by at least one live node, as JSON texts.
pub(super) const MEMBERS: &str = r#"
local alive, out, live = ARGV[1], {}, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  for _, n in ipairs(cjson.decode(all[i + 1]).n) do
    if live[n] == nil then live[n] = redis.call('EXISTS', alive .. n) == 1 end
    if live[n] then
      table.insert(out, cjson.decode(all[i + 1]).m)
      break
    end
  end
end
return out
"#;

/// Subscribers on live nodes other than this one.
pub(super) const REMOTE_SUBSCRIBERS: &str = r#"
local alive, node, total = ARGV[1], ARGV[2], 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= node and redis.call('EXISTS', alive .. all[i]) == 1 then total = total + tonumber(all[i + 1]) end
end
return total
"#;

/// Publishes a frame on its channel's route and returns the subscribers other live nodes
/// had for its channel, in one round trip.
pub(super) const PUBLISH_FRAME: &str = r#"
local alive, node, route, payload, total = ARGV[1], ARGV[2], ARGV[3], ARGV[4], 0
redis.call('PUBLISH', route, payload)
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= node and redis.call('EXISTS', alive .. all[i]) == 1 then total = total + tonumber(all[i + 1]) end
end
return total
"#;

/// Writes changed local subscriber counts: ARGV = node, then (hash, count) pairs.
pub(super) const WRITE_COUNTS: &str = r#"
local owned, node = KEYS[1], ARGV[1]
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '0' then
    redis.call('HDEL', ARGV[i], node)
  else
    redis.call('HSET', ARGV[i], node, ARGV[i + 1])
    redis.call('SADD', owned, ARGV[i])
  end
end
return 1
"#;

/// Refreshes the node's heartbeat; returns 1 when it was still there (0: it expired, or
/// Redis lost its data, and the node must write its state again). The list of nodes
/// outlives its last node by a day.
pub(super) const HEARTBEAT: &str = r#"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], 86400000)
return existed
"#;

/// Makes this node's part of one presence hash exactly ARGV[2..] ((client, member)
/// pairs), leaving other nodes' parts alone.
pub(super) const RESYNC_PRESENCE: &str = r#"
local hash, owned, node = KEYS[1], KEYS[2], ARGV[1]
local mine = {}
for i = 2, #ARGV, 2 do mine[ARGV[i]] = ARGV[i + 1] end
local all = redis.call('HGETALL', hash)
for i = 1, #all, 2 do
  local client, entry, nodes = all[i], cjson.decode(all[i + 1]), {}
  for _, n in ipairs(entry.n) do
    if n ~= node then table.insert(nodes, n) end
  end
  if mine[client] then
    table.insert(nodes, node)
    mine[client] = nil
  end
  if #nodes == 0 then
    redis.call('HDEL', hash, client)
  else
    redis.call('HSET', hash, client, cjson.encode({m = entry.m, n = nodes}))
  end
end
for client, member in pairs(mine) do
  redis.call('HSET', hash, client, cjson.encode({m = member, n = {node}}))
end
redis.call('SADD', owned, hash)
return 1
"#;

/// Removes every node whose heartbeat expired from the hashes it had entries in;
/// returns (presence hash, member) pairs of members no live node holds any more. The
/// node leaves `P:nodes` in the same step, so exactly one reaper handles it.
pub(super) const REAP: &str = r#"
local nodes, prefix = KEYS[1], ARGV[1]
local alive, presence = prefix .. ':node:', prefix .. ':presence:'
local leaves = {}
for _, dead in ipairs(redis.call('SMEMBERS', nodes)) do
  if redis.call('EXISTS', alive .. dead) == 0 then
    local owned = prefix .. ':owned:' .. dead
    for _, hash in ipairs(redis.call('SMEMBERS', owned)) do
      if string.sub(hash, 1, #presence) == presence then
        local all = redis.call('HGETALL', hash)
        for i = 1, #all, 2 do
          local entry, kept, held = cjson.decode(all[i + 1]), {}, false
          for _, n in ipairs(entry.n) do
            if n == dead then held = true else table.insert(kept, n) end
          end
          if held then
            local live = false
            for _, n in ipairs(kept) do
              if redis.call('EXISTS', alive .. n) == 1 then live = true end
            end
            if #kept == 0 then
              redis.call('HDEL', hash, all[i])
            else
              redis.call('HSET', hash, all[i], cjson.encode({m = entry.m, n = kept}))
            end
            if not live then
              table.insert(leaves, hash)
              table.insert(leaves, entry.m)
            end
          end
        end
      else
        redis.call('HDEL', hash, dead)
      end
    end
    redis.call('DEL', owned)
    redis.call('SREM', nodes, dead)
  end
end
return leaves
"#;

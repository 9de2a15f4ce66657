// kafkajs (a second client family, not librdkafka: issue 13 item 8) against a running rill cluster.
//
// Usage: NODE_PATH=DIR/node_modules node kafkajs_checks.js BOOTSTRAP
//
// 1. admin: describeCluster, createTopics (a config included), listTopics, fetchTopicMetadata,
//    describeConfigs (the topic's own value and its source);
// 2. an idempotent producer (acks=all) and a consumer reading every record back once, in order
//    per key;
// 3. compressed produce and consume with every codec kafkajs has: gzip built in, snappy
//    (kafkajs-snappy) and lz4 (kafkajs-lz4) registered from npm; zstd has no pure-JS codec
//    package (it needs a native build) and is not run;
// 4. a consumer group of two members: every record read once across them with committed
//    offsets; one member stops, records are added, a new member joins and the group goes on
//    from the committed offsets (nothing read twice);
// 5. AlterConfigs (retention.ms read back), CreatePartitions (3 to 5, a record to partition 4),
//    DeleteRecords (the low watermark moves; a consumer from the beginning starts there).
// Every check prints `PASS name: figures` or `FAIL name: why`; run.sh counts them.

'use strict';

const { Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes } = require('kafkajs');

const bootstrap = process.argv[2];
const TIMEOUT_MS = 30000;
let failures = 0;

function verdict(name, ok, detail) {
  process.stdout.write(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}\n`);
  if (!ok) failures += 1;
  return ok;
}

function log(message) {
  process.stderr.write(`  .. ${message}\n`);
}

const kafka = new Kafka({
  clientId: 'rill-kafkajs-checks',
  brokers: bootstrap.split(','),
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2000 },
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, predicate, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) {
      log(`timed out waiting for ${what}`);
      return null;
    }
    await sleep(200);
  }
}

// Reads `count` records of `topics` (one name or several) from the beginning with a fresh group.
async function readAll(topics, count, groupId) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  const seen = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [].concat(topics), fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      seen.push({ topic, partition, offset: message.offset, key: message.key && message.key.toString(), value: message.value.toString() });
    },
  });
  await waitFor(`${count} records of ${topics}`, () => seen.length >= count);
  await consumer.disconnect();
  return seen;
}

async function adminChecks(admin) {
  const cluster = await admin.describeCluster();
  verdict('kafkajs describeCluster', cluster.brokers.length === 3 && cluster.controller !== null,
    `${cluster.brokers.length} brokers, controller ${cluster.controller}`);
  const created = await admin.createTopics({
    topics: [
      { topic: 'rc-kafkajs', numPartitions: 3, replicationFactor: 3, configEntries: [{ name: 'retention.ms', value: '7200000' }] },
      { topic: 'rc-kafkajs-group', numPartitions: 4, replicationFactor: 3 },
      { topic: 'rc-kafkajs-admin', numPartitions: 3, replicationFactor: 3 },
    ],
    timeout: 15000,
  });
  const topics = await admin.listTopics();
  const metadata = await admin.fetchTopicMetadata({ topics: ['rc-kafkajs'] });
  const partitions = metadata.topics[0].partitions;
  verdict('kafkajs createTopics, listTopics, fetchTopicMetadata',
    created && ['rc-kafkajs', 'rc-kafkajs-group', 'rc-kafkajs-admin'].every((t) => topics.includes(t))
      && partitions.length === 3 && partitions.every((p) => p.leader >= 0 && p.replicas.length === 3),
    `created ${created}, ${topics.length} topics listed, rc-kafkajs leaders ${partitions.map((p) => p.leader)}`);
  const described = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'rc-kafkajs', configNames: ['retention.ms', 'cleanup.policy'] }],
    includeSynonyms: false,
  });
  const entries = described.resources[0].configEntries;
  const retention = entries.find((e) => e.configName === 'retention.ms');
  const cleanup = entries.find((e) => e.configName === 'cleanup.policy');
  verdict('kafkajs describeConfigs',
    retention && retention.configValue === '7200000' && !retention.isDefault && cleanup && cleanup.configValue === 'delete',
    `retention.ms ${retention && retention.configValue} (default ${retention && retention.isDefault}), cleanup.policy ${cleanup && cleanup.configValue}`);
}

async function idempotentChecks() {
  const records = 300;
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const started = Date.now();
  let acked = 0;
  for (let batch = 0; batch < 6; batch += 1) {
    const messages = [];
    for (let i = batch * 50; i < (batch + 1) * 50; i += 1) messages.push({ key: `k${i % 7}`, value: `js-${i}` });
    const result = await producer.send({ topic: 'rc-kafkajs', acks: -1, messages });
    acked += result.reduce((n, r) => n + (r.errorCode === 0 ? 1 : 0), 0) > 0 ? messages.length : 0;
  }
  const took = Date.now() - started;
  await producer.disconnect();
  const seen = await readAll('rc-kafkajs', records, 'rc-kafkajs-reader');
  const values = new Set(seen.map((r) => r.value));
  // Per key, values in the order they were sent.
  const inOrder = [...Array(7).keys()].every((k) => {
    const numbers = seen.filter((r) => r.key === `k${k}`).map((r) => Number(r.value.slice(3)));
    return numbers.every((n, i) => i === 0 || numbers[i - 1] < n);
  });
  verdict('kafkajs idempotent produce (acks=all) and consume',
    acked === records && seen.length === records && values.size === records && inOrder,
    `${acked} acknowledged in ${took} ms, ${seen.length} read, ${values.size} distinct, per-key order ${inOrder}`);
}

async function compressionChecks(admin) {
  const codecs = [['gzip', CompressionTypes.GZIP]];
  try {
    CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');
    codecs.push(['snappy', CompressionTypes.Snappy]);
  } catch (error) {
    verdict('kafkajs snappy codec', false, `kafkajs-snappy missing: ${error.message}`);
  }
  try {
    const LZ4 = require('kafkajs-lz4');
    CompressionCodecs[CompressionTypes.LZ4] = new LZ4().codec;
    codecs.push(['lz4', CompressionTypes.LZ4]);
  } catch (error) {
    verdict('kafkajs lz4 codec', false, `kafkajs-lz4 missing: ${error.message}`);
  }
  const records = 200;
  const sent = [];
  for (const [name, codec] of codecs) {
    const topic = `rc-kafkajs-${name}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 3 }], timeout: 15000 });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const messages = [];
    for (let i = 0; i < records; i += 1) messages.push({ key: `k${i}`, value: `${name}-${i}-${'x'.repeat(100)}` });
    let error = null;
    const started = Date.now();
    try {
      await producer.send({ topic, acks: -1, compression: codec, messages: messages.slice(0, 100) });
      await producer.send({ topic, acks: -1, compression: codec, messages: messages.slice(100) });
    } catch (e) {
      error = e;
    }
    sent.push({ name, topic, messages, error, took: Date.now() - started });
    await producer.disconnect();
  }
  // One consumer reads every codec's topic back (a group join costs the rebalance delay).
  const produced = sent.filter((s) => !s.error);
  const seen = await readAll(produced.map((s) => s.topic), produced.length * records, 'rc-kafkajs-codecs-reader');
  for (const { name, topic, messages, error, took } of sent) {
    const read = seen.filter((r) => r.topic === topic);
    const intact = read.length === records && read.every((r, i) => r.value === messages[i].value);
    verdict(`kafkajs ${name} produce and consume`, !error && intact,
      error ? `produce failed: ${error.message}` : `${records} records in ${took} ms, ${read.length} read back intact ${intact}`);
  }
}

async function groupChecks(admin) {
  const topic = 'rc-kafkajs-group';
  const groupId = 'rc-kafkajs-group';
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const send = async (from, to) => {
    const messages = [];
    for (let i = from; i < to; i += 1) messages.push({ key: `k${i % 11}`, value: `g-${i}` });
    await producer.send({ topic, acks: -1, messages });
  };
  await send(0, 400);
  const reads = new Map();
  const member = (name) => {
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 10000 });
    const run = async () => {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommitInterval: 200,
        eachMessage: async ({ message }) => {
          const value = message.value.toString();
          reads.set(value, (reads.get(value) || []).concat([name]));
        },
      });
    };
    return { consumer, run };
  };
  const a = member('a');
  const b = member('b');
  const started = Date.now();
  await Promise.all([a.run(), b.run()]);
  await waitFor('400 records across two members', () => reads.size >= 400);
  const readers = new Set([...reads.values()].flat());
  const once = [...reads.values()].every((who) => who.length === 1);
  verdict('kafkajs two-member group reads everything once', reads.size === 400 && once && readers.size === 2,
    `${reads.size} distinct records in ${Date.now() - started} ms, each once ${once}, members that read ${[...readers]}`);
  // Member b leaves (committing on the way out); records are added; a new member c joins.
  await b.consumer.disconnect();
  await send(400, 500);
  const c = member('c');
  await c.run();
  await waitFor('the 100 new records', () => reads.size >= 500);
  // The members commit every 200 ms: wait for the commits (redeliveries, if any, arrive meanwhile).
  const committedSum = async () => {
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
    return offsets[0].partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  };
  let committed = 0;
  await waitFor('every record committed', async () => {
    committed = await committedSum();
    return committed >= 500;
  });
  const twice = [...reads.entries()].filter(([, who]) => who.length > 1).map(([value]) => value);
  await Promise.all([a.consumer.disconnect(), c.consumer.disconnect()]);
  await producer.disconnect();
  verdict('kafkajs group resumes from committed offsets after a member restarts',
    reads.size === 500 && twice.length === 0 && committed === 500,
    `${reads.size} distinct records read, ${twice.length} read twice ${twice.slice(0, 5)}, committed offsets sum ${committed}`);
}

async function alterCheck(admin) {
  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'rc-kafkajs-admin', configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  });
  const described = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'rc-kafkajs-admin', configNames: ['retention.ms'] }],
    includeSynonyms: false,
  });
  const entry = described.resources[0].configEntries.find((e) => e.configName === 'retention.ms');
  verdict('kafkajs alterConfigs', entry && entry.configValue === '3600000' && !entry.isDefault,
    `retention.ms now ${entry && entry.configValue}`);
}

async function partitionsCheck(admin) {
  const grown = await admin.createPartitions({ topicPartitions: [{ topic: 'rc-kafkajs-admin', count: 5 }], timeout: 15000 });
  const metadata = await waitFor('5 partitions with leaders', async () => {
    const m = await admin.fetchTopicMetadata({ topics: ['rc-kafkajs-admin'] });
    const parts = m.topics[0].partitions;
    return parts.length === 5 && parts.every((p) => p.leader >= 0) ? m : null;
  });
  const producer = kafka.producer();
  await producer.connect();
  let sent = null;
  try {
    sent = await producer.send({ topic: 'rc-kafkajs-admin', acks: -1, messages: [{ value: 'to-partition-4', partition: 4 }] });
  } catch (error) {
    log(`produce to partition 4: ${error.message}`);
  }
  await producer.disconnect();
  verdict('kafkajs createPartitions', grown !== false && metadata !== null && sent && sent[0].partition === 4 && sent[0].errorCode === 0,
    `grown to ${metadata ? metadata.topics[0].partitions.length : '?'} partitions, produce to partition 4: ${JSON.stringify(sent)}`);
}

async function deleteRecordsCheck(admin) {
  const topic = 'rc-kafkajs-admin';
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < 30; i += 1) messages.push({ value: `dr-${i}`, partition: 0 });
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '10' }] });
  const offsets = await admin.fetchTopicOffsets(topic);
  const p0 = offsets.find((o) => o.partition === 0);
  const consumer = kafka.consumer({ groupId: 'rc-kafkajs-deleted-reader' });
  let first = null;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      if (partition === 0 && first === null) first = message.offset;
    },
  });
  await waitFor('a record of partition 0', () => first !== null);
  await consumer.disconnect();
  verdict('kafkajs deleteTopicRecords', p0 && p0.low === '10' && p0.high === '30' && first === '10',
    `partition 0 low ${p0 && p0.low} high ${p0 && p0.high}, a consumer from the beginning starts at ${first}`);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const steps = [
    ['admin', () => adminChecks(admin)],
    ['idempotent', () => idempotentChecks()],
    ['compression', () => compressionChecks(admin)],
    ['group', () => groupChecks(admin)],
    ['alterConfigs', () => alterCheck(admin)],
    ['createPartitions', () => partitionsCheck(admin)],
    ['deleteRecords', () => deleteRecordsCheck(admin)],
  ];
  for (const [name, step] of steps) {
    const started = Date.now();
    try {
      await step();
    } catch (error) {
      verdict(`kafkajs ${name}`, false, `threw ${error.name}: ${error.message}`);
    }
    log(`${name} took ${Date.now() - started} ms`);
  }
  await admin.disconnect();
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((error) => {
  verdict('kafkajs checks', false, `threw ${error.stack}`);
  process.exit(1);
});

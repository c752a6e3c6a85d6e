//! The Kafka sink: an idempotent librdkafka producer plus topic creation.
//!
//! # Delivery guarantee (at least once, per-key order kept)
//! * `acks=all` and `enable.idempotence=true`: an acknowledged record survives a broker failure,
//!   and librdkafka's retries neither duplicate nor reorder records within a partition.
//! * `message.timeout.ms=0` (no timeout) by default: while the broker is down, records wait in
//!   librdkafka's queue; when it fills, the pipeline stops reading the slot. Nothing is dropped.
//! * If an operator sets a finite `message.timeout.ms` and a record does time out, the pipeline
//!   does not "log and move on": it fails the run, discards the producer, and restarts capture
//!   from the last position confirmed to PostgreSQL, re-sending everything after it in order.
//! * `partitioner=murmur2_random`: keyed records go to `murmur2(key) % partitions`, the Java
//!   client's (and so Debezium's) placement, so per-key order survives a cutover from Debezium.
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode as Code;

/// Producer settings walrelay sets. Operators may override the tunables (compression, batching,
/// linger, queue sizes, timeouts, security); configuration refuses the ones that would break the
/// guarantee above.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("partitioner", "murmur2_random"),
    ("message.timeout.ms", "0"),
    // A Debezium JSON record with its schema is ~2-3 KB and compresses ~10x.
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    // Bound the memory of records waiting for the broker (librdkafka's default is 1 GiB).
    ("queue.buffering.max.kbytes", "65536"),
    ("queue.buffering.max.messages", "100000"),
    ("client.id", "walrelay"),
];

/// How walrelay creates topics that do not exist yet.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub partitions: i32,
    pub replication_factor: i32,
    /// `cleanup.policy`: `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: String,
    /// Other topic configs, passed as they are.
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// librdkafka properties, validated by configuration; applied over [`PRODUCER_DEFAULTS`].
    pub properties: BTreeMap<String, String>,
    pub topics: TopicSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("invalid Kafka producer setting: {0} (sink.kafka.properties)")]
    Config(#[source] KafkaError),
    #[error("cannot create topic `{topic}`: {message}")]
    CreateTopic { topic: String, message: String },
    #[error("the broker did not deliver a record to `{topic}`: {error} (the relay restarts from the last confirmed LSN)")]
    Delivery { topic: String, error: KafkaError },
    #[error("cannot queue a record for `{topic}`: {error}")]
    Produce { topic: String, error: KafkaError },
}

impl SinkError {
    /// Delivery and broker trouble is worth retrying; a bad setting is not.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SinkError::Config(_))
    }
}

/// What a record's delivery came to.
pub type DeliveryOutcome = Result<(), SinkError>;

pub struct KafkaSink {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    topics: TopicSettings,
    known_topics: HashSet<String>,
}

impl KafkaSink {
    pub fn new(settings: &KafkaSettings) -> Result<Self, SinkError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &settings.brokers);
        for (k, v) in PRODUCER_DEFAULTS {
            cfg.set(*k, *v);
        }
        for (k, v) in &settings.properties {
            cfg.set(k, v);
        }
        let producer: FutureProducer = cfg.create().map_err(SinkError::Config)?;
        let mut admin_cfg = ClientConfig::new();
        admin_cfg.set("bootstrap.servers", &settings.brokers);
        for (k, v) in &settings.properties {
            // Security settings apply to the admin client as well.
            if k.starts_with("security.") || k.starts_with("ssl.") || k.starts_with("sasl.") {
                admin_cfg.set(k, v);
            }
        }
        let admin: AdminClient<DefaultClientContext> =
            admin_cfg.create().map_err(SinkError::Config)?;
        Ok(KafkaSink {
            producer,
            admin,
            topics: settings.topics.clone(),
            known_topics: HashSet::new(),
        })
    }

    /// Creates `topic` if the broker does not have it yet (once per topic per run).
    pub async fn ensure_topic(&mut self, topic: &str) -> Result<(), SinkError> {
        if self.known_topics.contains(topic) {
            return Ok(());
        }
        let mut new = NewTopic::new(
            topic,
            self.topics.partitions,
            TopicReplication::Fixed(self.topics.replication_factor),
        )
        .set("cleanup.policy", &self.topics.cleanup_policy);
        for (k, v) in &self.topics.config {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results =
            self.admin
                .create_topics([&new], &opts)
                .await
                .map_err(|e| SinkError::CreateTopic {
                    topic: topic.into(),
                    message: e.to_string(),
                })?;
        for r in results {
            match r {
                Ok(_) => {
                    tracing::info!(topic, partitions = self.topics.partitions, "created topic")
                }
                Err((_, Code::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(SinkError::CreateTopic {
                        topic: topic.into(),
                        message: code.to_string(),
                    })
                }
            }
        }
        self.known_topics.insert(topic.to_string());
        Ok(())
    }

    /// Queues a record. `Ok(None)` means librdkafka's queue is full: wait for deliveries and retry.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[crate::event::Header],
    ) -> Result<Option<Delivery>, SinkError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if !headers.is_empty() {
            let mut owned = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
            for h in headers {
                owned = owned.insert(rdkafka::message::Header {
                    key: &h.key,
                    value: Some(&h.value),
                });
            }
            record = record.headers(owned);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        match self.producer.send_result(record) {
            Ok(fut) => Ok(Some(fut.map(delivery_outcome as fn(_) -> DeliveryOutcome))),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(None),
            Err((error, _)) => Err(SinkError::Produce {
                topic: topic.into(),
                error,
            }),
        }
    }

    /// Waits for queued records to be delivered, at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }
}

/// A record's delivery, resolving to its outcome.
pub type Delivery = futures_util::future::Map<
    DeliveryFuture,
    fn(<DeliveryFuture as std::future::Future>::Output) -> DeliveryOutcome,
>;

fn delivery_outcome(r: <DeliveryFuture as std::future::Future>::Output) -> DeliveryOutcome {
    use rdkafka::message::Message as _;
    match r {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, msg))) => Err(SinkError::Delivery {
            topic: msg.topic().to_string(),
            error,
        }),
        Err(_canceled) => Err(SinkError::Delivery {
            topic: "(unknown)".into(),
            error: KafkaError::Canceled,
        }),
    }
}

//! `walrelay tail`: read a topic back, for operators checking what the relay wrote (the role
//! `kafka-console-consumer` plays next to Debezium). Partitions are assigned directly, from the
//! beginning, without a consumer group; nothing is committed.
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// What to read and when to stop.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub brokers: String,
    pub topic: String,
    /// Stop after this many records (all partitions together).
    pub count: Option<usize>,
    /// Stop when no record arrived for this long (after the topic exists).
    pub idle: Option<Duration>,
    /// Give up if the topic does not appear within this time.
    pub wait_for_topic: Duration,
}

/// Writes one JSON line per record: `{"partition","offset","key","value"}`, key and value parsed as
/// JSON when they are, else as strings; `null` for a tombstone.
pub fn tail(opts: &TailOptions, out: &mut impl Write) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", "walrelay-tail")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the Kafka consumer")?;
    let start = Instant::now();
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(&opts.topic), Duration::from_secs(5))
            .with_context(|| format!("reading metadata from {}", opts.brokers))?;
        let found = md
            .topics()
            .iter()
            .find(|t| t.name() == opts.topic && t.error().is_none())
            .map(|t| t.partitions().len());
        match found {
            Some(n) if n > 0 => break n,
            _ if start.elapsed() >= opts.wait_for_topic => {
                bail!(
                    "topic `{}` did not appear on {} within {:?}",
                    opts.topic,
                    opts.brokers,
                    opts.wait_for_topic
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&opts.topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut n = 0;
    let mut last = Instant::now();
    loop {
        if opts.count.is_some_and(|c| n >= c) {
            return Ok(n);
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(m) => {
                let m = m.with_context(|| format!("consuming {}", opts.topic))?;
                let mut line = format!(
                    "{{\"partition\":{},\"offset\":{},\"key\":",
                    m.partition(),
                    m.offset()
                );
                push_json(&mut line, m.key());
                line.push_str(",\"value\":");
                push_json(&mut line, m.payload());
                line.push('}');
                writeln!(out, "{line}")?;
                out.flush()?;
                n += 1;
                last = Instant::now();
            }
            None => {
                if opts.idle.is_some_and(|idle| last.elapsed() >= idle) {
                    return Ok(n);
                }
            }
        }
    }
}

/// Appends `bytes` as they are when they are JSON (keeping the writer's key order), as a JSON
/// string otherwise, `null` when absent.
fn push_json(line: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        None => line.push_str("null"),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
                line.push_str(text.trim())
            }
            _ => line.push_str(
                &serde_json::Value::String(String::from_utf8_lossy(b).into_owned()).to_string(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::push_json;

    #[test]
    fn keeps_json_verbatim_and_quotes_the_rest() {
        let mut s = String::new();
        push_json(&mut s, Some(br#"{"b":1,"a":2}"#));
        s.push(' ');
        push_json(&mut s, Some(b"plain \"text\""));
        s.push(' ');
        push_json(&mut s, None);
        assert_eq!(s, r#"{"b":1,"a":2} "plain \"text\"" null"#);
    }
}

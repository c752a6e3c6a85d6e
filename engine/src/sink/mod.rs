//! Where encoded records go: a Kafka broker ([`kafka`]) or nowhere (the discarding sink, for
//! measuring the relay without a broker), and the [`Tally`] of what was handed to either.
pub mod kafka;

use kafka::{Delivery, KafkaSettings, KafkaSink, SinkError};

/// Which sink a run writes to (`sink:` in the configuration).
#[derive(Debug, Clone)]
pub enum SinkSettings {
    Kafka(KafkaSettings),
    /// `sink: { null: {} }`: every record is still encoded, key and value, and counted in the
    /// [`Tally`], then dropped and acknowledged at once, so positions are confirmed to PostgreSQL
    /// as they would be after a broker's acknowledgement. For benchmarks and tests.
    Null,
}

/// An open sink.
pub enum Sink {
    Kafka(Box<KafkaSink>),
    Null,
}

/// What became of a record handed to [`Sink::send`].
pub enum Sent {
    /// Queued: acknowledged when the future resolves.
    Queued(Delivery),
    /// Acknowledged already (the discarding sink).
    Done,
    /// The producer's queue is full: wait for acknowledgements and hand it again.
    Full,
}

impl Sink {
    pub fn open(settings: &SinkSettings) -> Result<Sink, SinkError> {
        Ok(match settings {
            SinkSettings::Kafka(k) => Sink::Kafka(Box::new(KafkaSink::new(k)?)),
            SinkSettings::Null => Sink::Null,
        })
    }

    /// The sink's name in logs: `kafka` or `null`.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Kafka(_) => "kafka",
            Sink::Null => "null",
        }
    }

    /// Creates `topic` where the sink has topics (once per topic per run).
    pub async fn ensure_topic(&mut self, topic: &str) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.ensure_topic(topic).await,
            Sink::Null => Ok(()),
        }
    }

    /// Hands over one record.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[crate::event::Header],
    ) -> Result<Sent, SinkError> {
        match self {
            Sink::Kafka(k) => Ok(match k.send(topic, key, value, headers)? {
                Some(delivery) => Sent::Queued(delivery),
                None => Sent::Full,
            }),
            Sink::Null => Ok(Sent::Done),
        }
    }
}

/// A running count and checksum of the records the relay handed to its sink, the same for every
/// sink, so that a run to the discarding sink and a run to the broker can be compared.
///
/// # The checksum (`sum64`)
/// Each record's hash `h(record)` is computed over its topic, key and value, in that order, by
/// folding 64-bit words into a state that starts at `0xcbf29ce484222325`:
///
/// ```text
/// mix(h, w)   = g ^ (g >> 32)  where g = (h ^ w) * 0x100000001b3   (mod 2^64)
/// field(h, b) = absent:  mix(h, 0xffffffffffffffff)
///               present: four lanes l0..l3 = mix(h, len(b) + i) for i = 0..3; then for each
///                        32-byte block of b (the last padded with zero bytes), l_i = mix(l_i,
///                        w_i) with w_i the block's i-th 8 bytes read as a little-endian u64;
///                        the result is mix(mix(mix(l0, l1), l2), l3)
/// h(record)   = field(field(field(0xcbf29ce484222325, topic), key), value)
/// checksum    = the sum of h(record) over all records, mod 2^64
/// ```
///
/// Four lanes let a processor run four multiplications at once: the checksum keeps up with the
/// encoder (one lane was a tenth of the relay's CPU).
///
/// A sum makes the checksum independent of the order of records, so a reader of the broker's
/// topics computes the same value whatever the partitions and topics it reads first. Headers are
/// not included. A tombstone is a record with an absent value. `tests/e2e/null_sink.rs` computes
/// it independently from the records read back from the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records handed to the sink (tombstones included).
    pub records: u64,
    /// Of them, tombstones (records with no value).
    pub tombstones: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
    /// The `sum64` checksum (see above).
    pub checksum: u64,
    /// Column values left out of the records because walrelay has no Debezium mapping for their
    /// type (`format.unknown_types: skip`): one per unmapped column per row written. Not part
    /// of the checksum.
    pub unmapped_values: u64,
    /// From a streamed change's commit to the sink's acknowledgement of its record.
    pub commit_to_ack: LatencyHistogram,
}

/// Sub-buckets per power of two: values are kept to within 1/8 (12.5%).
const SUB_BUCKETS: u32 = 8;
/// Values below this many µs have a bucket each.
const LINEAR: u64 = 16;
/// Buckets up to 2^40 µs (12.7 days).
const BUCKETS: usize = LINEAR as usize + 37 * SUB_BUCKETS as usize;

/// A histogram of latencies in µs with log-linear buckets (HDR-style: exact below 16 µs, then
/// 8 buckets per power of two), constant size, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    pub count: u64,
    pub max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: [0; BUCKETS],
            count: 0,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    fn bucket(us: u64) -> usize {
        if us < LINEAR {
            return us as usize;
        }
        let exp = 63 - us.leading_zeros(); // >= 4
        let sub = (us >> (exp - 3)) & u64::from(SUB_BUCKETS - 1);
        (LINEAR as usize + (exp as usize - 4) * SUB_BUCKETS as usize + sub as usize)
            .min(BUCKETS - 1)
    }

    /// The largest value a bucket holds (the last one takes everything above).
    fn upper(bucket: usize) -> u64 {
        if bucket == BUCKETS - 1 {
            return u64::MAX;
        }
        if bucket < LINEAR as usize {
            return bucket as u64;
        }
        let i = bucket - LINEAR as usize;
        let exp = (i / SUB_BUCKETS as usize) as u32 + 4;
        let sub = (i % SUB_BUCKETS as usize) as u64;
        ((8 + sub + 1) << (exp - 3)) - 1
    }

    pub fn record(&mut self, us: u64) {
        self.counts[Self::bucket(us)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The value at quantile `q` (0 to 1), as its bucket's upper bound (never above the
    /// maximum seen); `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(i).min(self.max_us));
            }
        }
        Some(self.max_us)
    }
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
fn mix(h: u64, w: u64) -> u64 {
    let g = (h ^ w).wrapping_mul(PRIME);
    g ^ (g >> 32)
}

#[inline]
fn field(h: u64, bytes: Option<&[u8]>) -> u64 {
    let Some(bytes) = bytes else {
        return mix(h, u64::MAX);
    };
    let len = bytes.len() as u64;
    let mut lanes = [0u64; 4];
    for (i, lane) in lanes.iter_mut().enumerate() {
        *lane = mix(h, len + i as u64);
    }
    let mut mix_block = |block: &[u8; 32]| {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&block[i * 8..i * 8 + 8]);
            *lane = mix(*lane, u64::from_le_bytes(word));
        }
    };
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        mix_block(block.try_into().expect("32 bytes"));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        let mut block = [0u8; 32];
        block[..rest.len()].copy_from_slice(rest);
        mix_block(&block);
    }
    mix(mix(mix(lanes[0], lanes[1]), lanes[2]), lanes[3])
}

/// `h(record)` of the [`Tally`] checksum.
pub fn record_hash(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    field(field(field(SEED, Some(topic.as_bytes())), key), value)
}

impl Tally {
    /// Counts one record.
    pub fn add(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.records += 1;
        if value.is_none() {
            self.tombstones += 1;
        }
        self.bytes += (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64;
        self.checksum = self.checksum.wrapping_add(record_hash(topic, key, value));
    }

    /// The checksum as 16 hexadecimal digits, as logged.
    pub fn checksum_hex(&self) -> String {
        format!("{:016x}", self.checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_within_an_eighth() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=10_000u64 {
            h.record(us);
        }
        for (q, exact) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.01, 100.0)] {
            let got = h.quantile_us(q).unwrap() as f64;
            assert!(
                got >= exact && got <= exact * 1.125 + 1.0,
                "q{q}: {got} for {exact}"
            );
        }
        assert_eq!(h.quantile_us(1.0), Some(10_000));
        assert_eq!(h.max_us, 10_000);
        // Small values are exact; huge ones land in the last bucket.
        let mut s = LatencyHistogram::default();
        s.record(3);
        assert_eq!(s.quantile_us(0.5), Some(3));
        s.record(u64::MAX);
        assert_eq!(s.quantile_us(1.0), Some(u64::MAX));
    }

    #[test]
    fn counts_records_tombstones_and_bytes() {
        let mut t = Tally::default();
        t.add("p.public.t", Some(b"{\"id\":1}"), Some(b"{\"op\":\"d\"}"));
        t.add("p.public.t", Some(b"{\"id\":1}"), None);
        t.add("p.message", None, Some(b"x"));
        assert_eq!(t.records, 3);
        assert_eq!(t.tombstones, 1);
        assert_eq!(t.bytes, 8 + 10 + 8 + 1);
    }

    #[test]
    fn checksum_follows_its_definition() {
        // Computed by hand from the definition: topic "t" (1 byte), key absent, value of 9
        // bytes (one 32-byte block: a full word, a padded one, two zero words).
        let m = |h: u64, w: u64| {
            let g = (h ^ w).wrapping_mul(0x100000001b3);
            g ^ (g >> 32)
        };
        let fold = |h: u64, len: u64, words: [u64; 4]| {
            let l: Vec<u64> = (0..4)
                .map(|i| m(m(h, len + i), words[i as usize]))
                .collect();
            m(m(m(l[0], l[1]), l[2]), l[3])
        };
        let mut h = fold(0xcbf29ce484222325, 1, [u64::from(b't'), 0, 0, 0]);
        h = m(h, u64::MAX);
        h = fold(
            h,
            9,
            [u64::from_le_bytes(*b"abcdefgh"), u64::from(b'i'), 0, 0],
        );
        assert_eq!(record_hash("t", None, Some(b"abcdefghi")), h);
        let mut t = Tally::default();
        t.add("t", None, Some(b"abcdefghi"));
        t.add("t", None, Some(b"abcdefghi"));
        assert_eq!(t.checksum, h.wrapping_mul(2));
        assert_eq!(t.checksum_hex().len(), 16);
    }

    #[test]
    fn checksum_ignores_order_but_not_content() {
        type Rec<'a> = (&'a str, Option<&'a [u8]>, Option<&'a [u8]>);
        let recs: [Rec<'_>; 3] = [
            ("a", Some(b"k1"), Some(b"v1")),
            ("a", Some(b"k1"), None),
            ("b", Some(b"k2"), Some(b"v2")),
        ];
        let mut forward = Tally::default();
        recs.iter().for_each(|(t, k, v)| forward.add(t, *k, *v));
        let mut backward = Tally::default();
        recs.iter()
            .rev()
            .for_each(|(t, k, v)| backward.add(t, *k, *v));
        assert_eq!(forward, backward);

        // An absent field, an empty one and moved bytes all differ.
        assert_ne!(
            record_hash("a", None, None),
            record_hash("a", Some(b""), None)
        );
        assert_ne!(
            record_hash("a", Some(b"k"), Some(b"v")),
            record_hash("a", Some(b"kv"), Some(b""))
        );
        assert_ne!(
            record_hash("ab", None, Some(b"v")),
            record_hash("a", Some(b"b"), Some(b"v"))
        );
        // A change in the last byte of a full word changes the hash.
        assert_ne!(
            record_hash("t", None, Some(b"abcdefgh")),
            record_hash("t", None, Some(b"abcdefgi"))
        );
    }
}

//! Arbitrary bytes as the payload of one XLogData message: `decode` must return a message or an
//! error, never panic, whether or not it is told it is inside a stream block.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walrelay_pgwire::pgoutput::decode;

fuzz_target!(|data: &[u8]| {
    for in_stream in [false, true] {
        match decode(data, in_stream) {
            // Decoding is a pure function of its input.
            Ok(m) => assert_eq!(decode(data, in_stream), Ok(m)),
            // The error must render (it names the message, field and offset).
            Err(e) => drop(e.to_string()),
        }
    }
});

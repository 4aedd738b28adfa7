//! Feeds arbitrary text to the filter and PATCH path parsers: they must never panic, and whatever
//! they accept must print as text that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimflow_core::filter::{MAX_FILTER_LEN, parse_filter, parse_patch_path};

fuzz_target!(|data: &[u8]| {
    // Lossy decoding keeps invalid UTF-8 inputs useful instead of discarding them.
    let text = String::from_utf8_lossy(data);
    if let Ok(filter) = parse_filter(&text) {
        let printed = filter.to_string();
        // Printing may lengthen a filter (`1E2` prints as `100.0`, the Entra form gains an
        // `and`), so text near the limit may legitimately not parse again.
        if printed.len() <= MAX_FILTER_LEN {
            match parse_filter(&printed) {
                Ok(again) => assert_eq!(again, filter, "{text:?} printed as {printed:?}"),
                Err(error) => panic!("{text:?} printed as {printed:?}: {}", error.detail),
            }
        }
    }
    if let Ok(path) = parse_patch_path(&text) {
        let printed = path.to_string();
        if printed.len() <= MAX_FILTER_LEN {
            match parse_patch_path(&printed) {
                Ok(again) => assert_eq!(again, path, "{text:?} printed as {printed:?}"),
                Err(error) => panic!("{text:?} printed as {printed:?}: {}", error.detail),
            }
        }
    }
});

//! A small strict JSON reader for the month-end's hot path over Usage API pages: it finds each record's
//! `subscriptionId`, `usageStartTime`, `usageEndTime`, `quantity`, `meterId` and `instanceData` as raw
//! slices of the page, validating the whole page as JSON (RFC 8259: string escapes, no control characters,
//! number grammar, nesting) as it goes, with SIMD search inside strings.
//!
//! It reads only what it can read exactly like `serde_json` would. Anything it does not expect (a wanted
//! field twice or of another type, an escape inside an id or a time, nesting deeper than 64) makes it give
//! up (`None`), and the caller reads the page with `serde_json` instead, which accepts it the same way or
//! names the record at fault. A property test checks that whenever this reader answers, `serde_json` agrees.

/// The raw fields of one record, as slices of the page. Strings are the text between the quotes (wanted
/// strings hold no escape); `quantity` is the number's text; `instance_data` is the raw JSON value
/// (a string with its quotes and escapes, or `null`), `None` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// `properties.subscriptionId`.
    pub subscription: &'a str,
    /// `properties.usageStartTime`.
    pub start: &'a str,
    /// `properties.usageEndTime`.
    pub end: &'a str,
    /// `properties.quantity`, the number's text.
    pub quantity: &'a str,
    /// `properties.meterId`.
    pub meter: &'a str,
    /// `properties.instanceData`, raw.
    pub instance_data: Option<&'a str>,
}

const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The page holds no byte below 0x20 at all (compact JSON): strings need no control-character check.
    clean: bool,
}

/// Whether `bytes` holds a byte below 0x20, 32 bytes at a time (the fold has no early exit, so the compiler
/// vectorises it).
fn has_control(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    let found = chunks
        .by_ref()
        .any(|chunk| chunk.iter().fold(0u8, |found, &byte| found | u8::from(byte < 0x20)) != 0);
    found || chunks.remainder().iter().any(|&byte| byte < 0x20)
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
/// Words looked at before a SIMD search.
const NEAR_WORDS: usize = 4;

/// The bytes of `word` equal to zero, as their high bits. Bits above the lowest can be false (a borrow
/// runs on from a zero byte), the lowest set bit is always exact: only the first match is used.
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS
}

/// The first `"` or `\` at or after `from` within the next few words (`Ok`), or where to go on searching
/// (`Err`). Eight bytes at a time, in plain integer arithmetic.
fn quote_or_backslash_near(bytes: &[u8], from: usize) -> Result<usize, usize> {
    let mut at = from;
    for _ in 0..NEAR_WORDS {
        let Some(word) = bytes.get(at..at + 8).and_then(|chunk| <[u8; 8]>::try_from(chunk).ok()) else {
            return bytes[at.min(bytes.len())..]
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\')
                .map_or(Err(bytes.len()), |offset| Ok(at + offset));
        };
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ (LOW_BITS * u64::from(b'"')))
            | zero_bytes(word ^ (LOW_BITS * u64::from(b'\\')));
        if found != 0 {
            return Ok(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    Err(at)
}

impl<'a> Reader<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string; returns its content (between the quotes) and whether it holds an escape.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.expect(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            // Escapes come close together in escaped JSON (`\":{\"`): look a few words ahead, eight bytes at a
            // time, before paying for a SIMD search.
            let found = match quote_or_backslash_near(self.bytes, self.at) {
                Ok(found) => found,
                Err(near) => near + memchr::memchr2(b'"', b'\\', &self.bytes[near..])?,
            };
            // JSON strings hold no control characters.
            if !self.clean && has_control(&self.bytes[self.at..found]) {
                return None;
            }
            if self.bytes[found] == b'"' {
                self.at = found + 1;
                return Some((self.text.get(start..found)?, escaped));
            }
            escaped = true;
            match self.bytes.get(found + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at = found + 2,
                b'u' => {
                    let digits = self.bytes.get(found + 2..found + 6)?;
                    if !digits.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.at = found + 6;
                }
                _ => return None,
            }
        }
    }

    /// A number; returns its text.
    fn number(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        let digits = |reader: &mut Self| {
            let from = reader.at;
            while reader.bytes.get(reader.at).is_some_and(u8::is_ascii_digit) {
                reader.at += 1;
            }
            reader.at > from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !digits(self) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        self.text.get(start..self.at)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_whitespace();
        self.bytes.get(self.at..self.at + word.len()).filter(|found| *found == word.as_bytes())?;
        self.at += word.len();
        Some(())
    }

    /// Any value, validated and skipped; returns its raw text.
    fn value(&mut self, depth: usize) -> Option<&'a str> {
        if depth > MAX_DEPTH {
            return None;
        }
        let first = self.peek()?;
        let start = self.at;
        match first {
            b'"' => {
                self.string()?;
            }
            b'{' => {
                self.object(|reader, _| reader.value(depth + 1).map(drop))?;
            }
            b'[' => {
                self.at += 1;
                if self.peek()? == b']' {
                    self.at += 1;
                } else {
                    loop {
                        self.value(depth + 1)?;
                        match self.peek()? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
            }
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'n' => self.literal("null")?,
            _ => {
                self.number()?;
            }
        }
        self.text.get(start..self.at)
    }

    /// An object, calling `member` with each key (the reader then at its value, which `member` must read).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let (key, escaped) = self.string()?;
            if escaped {
                // A key spelled with escapes could name a wanted field: let serde_json read it.
                return None;
            }
            self.expect(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A wanted string: no escapes.
    fn plain_string(&mut self) -> Option<&'a str> {
        let (text, escaped) = self.string()?;
        (!escaped).then_some(text)
    }

    fn properties(&mut self) -> Option<RawRecord<'a>> {
        let mut fields: [Option<&'a str>; 6] = [None; 6];
        let mut set = |slot: usize, value: &'a str| {
            // A wanted field twice: serde_json refuses the page.
            fields[slot].replace(value).is_none().then_some(())
        };
        self.object(|reader, key| match key {
            "subscriptionId" => set(0, reader.plain_string()?),
            "usageStartTime" => set(1, reader.plain_string()?),
            "usageEndTime" => set(2, reader.plain_string()?),
            "quantity" => {
                // A number only (a string holding a number is not what the API sends).
                if reader.peek()? == b'"' {
                    return None;
                }
                set(3, reader.number()?)
            }
            "meterId" => set(4, reader.plain_string()?),
            "instanceData" => match reader.peek()? {
                b'"' | b'n' => set(5, reader.value(1)?),
                _ => None,
            },
            _ => reader.value(1).map(drop),
        })?;
        Some(RawRecord {
            subscription: fields[0]?,
            start: fields[1]?,
            end: fields[2]?,
            quantity: fields[3]?,
            meter: fields[4]?,
            // An explicit null reads as absent, as serde_json reads it into an Option.
            instance_data: fields[5].filter(|raw| *raw != "null"),
        })
    }
}

/// Read a page's records, or `None` when the page is not one this reader reads exactly (see the module
/// documentation).
pub fn scan_page(text: &str) -> Option<Vec<RawRecord<'_>>> {
    let mut reader = Reader { text, bytes: text.as_bytes(), at: 0, clean: !has_control(text.as_bytes()) };
    let mut records = None;
    reader.object(|reader, key| {
        if key != "value" {
            return reader.value(1).map(drop);
        }
        if records.is_some() {
            return None;
        }
        let mut list = Vec::new();
        reader.expect(b'[')?;
        if reader.peek()? == b']' {
            reader.at += 1;
        } else {
            loop {
                let mut properties = None;
                reader.object(|reader, key| {
                    if key == "properties" {
                        if properties.is_some() {
                            return None;
                        }
                        properties = Some(reader.properties()?);
                        Some(())
                    } else {
                        reader.value(2).map(drop)
                    }
                })?;
                list.push(properties?);
                match reader.peek()? {
                    b',' => reader.at += 1,
                    b']' => {
                        reader.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        records = Some(list);
        Some(())
    })?;
    reader.skip_whitespace();
    if reader.at != text.len() {
        return None;
    }
    records
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::value::RawValue;

    use super::*;

    const SAMPLE: &str = include_str!("../../../tests/data/azure-stack-hub-sample-usage.json");

    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        value: Vec<Aggregate<'a>>,
    }

    #[derive(Deserialize)]
    struct Aggregate<'a> {
        #[serde(borrow)]
        properties: Properties<'a>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Properties<'a> {
        subscription_id: &'a str,
        usage_start_time: &'a str,
        usage_end_time: &'a str,
        #[serde(borrow)]
        quantity: &'a RawValue,
        meter_id: &'a str,
        #[serde(borrow, default)]
        instance_data: Option<&'a RawValue>,
    }

    /// What serde_json reads, in the scanner's terms.
    fn oracle(text: &str) -> Option<Vec<RawRecord<'_>>> {
        let page: Page<'_> = serde_json::from_str(text).ok()?;
        Some(
            page.value
                .iter()
                .map(|aggregate| {
                    let properties = &aggregate.properties;
                    RawRecord {
                        subscription: properties.subscription_id,
                        start: properties.usage_start_time,
                        end: properties.usage_end_time,
                        quantity: properties.quantity.get(),
                        meter: properties.meter_id,
                        instance_data: properties.instance_data.map(RawValue::get),
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn the_sample_page_reads_like_serde_json() {
        let scanned = scan_page(SAMPLE).unwrap();
        assert_eq!(scanned.len(), 20);
        assert_eq!(Some(scanned), oracle(SAMPLE));
    }

    #[test]
    fn escapes_in_skipped_strings_read_like_serde_json() {
        for escape in ["\\uD800", "\\uDC00x", "\\uD83D\\uDE00", "\\u00e9", "\\n", "\\/"] {
            let text = SAMPLE.replacen("\"name\": \"", &format!("\"name\": \"{escape}"), 1);
            assert_eq!(scan_page(&text).is_some(), oracle(&text).is_some(), "{escape}");
            if let Some(scanned) = scan_page(&text) {
                assert_eq!(Some(scanned), oracle(&text));
            }
        }
    }

    #[test]
    fn unusual_pages_are_left_to_serde_json() {
        for text in [
            r#"{"value":[{"properties":{"subscriptionId":"s","subscriptionId":"t","usageStartTime":"a","usageEndTime":"b","quantity":1,"meterId":"m"}}]}"#,
            r#"{"value":[{"properties":{"subscriptionId":"s","usageStartTime":"a","usageEndTime":"b","quantity":"1","meterId":"m"}}]}"#,
            r#"{"value":[{"properties":{"subscriptionId":"s\u0041","usageStartTime":"a","usageEndTime":"b","quantity":1,"meterId":"m"}}]}"#,
            r#"{"value":[{"properties":{"subscriptionId":"s","usageStartTime":"a","usageEndTime":"b","quantity":01,"meterId":"m"}}]}"#,
            r#"{"value":[{"properties":{"subscriptionId":"s","usageStartTime":"a","usageEndTime":"b","quantity":1,"meterId":"m"}},]}"#,
            "{\"value\":[{\"properties\":{\"subscriptionId\":\"s\t\",\"usageStartTime\":\"a\",\"usageEndTime\":\"b\",\"quantity\":1,\"meterId\":\"m\"}}]}",
        ] {
            assert_eq!(scan_page(text), None, "{text}");
        }
        let spaced = r#" { "value" : [ { "properties" : { "subscriptionId" : "s" , "usageStartTime" : "a" , "usageEndTime" : "b" , "quantity" : -1.5e3 , "meterId" : "m" , "instanceData" : null } } ] , "nextLink" : null } "#;
        assert_eq!(scan_page(spaced), oracle(spaced));
        assert!(scan_page(spaced).is_some());
    }

    proptest! {
        /// The word-at-a-time search finds the first quote or backslash exactly where a byte loop does.
        #[test]
        fn word_search_matches_a_byte_loop(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0u8), Just(1u8), Just(0x80u8), Just(0xFFu8), any::<u8>()], 0..80),
            from in 0usize..80,
        ) {
            let from = from.min(bytes.len());
            let expected = bytes[from..].iter().position(|&byte| byte == b'"' || byte == b'\\').map(|offset| from + offset);
            match quote_or_backslash_near(&bytes, from) {
                Ok(found) => prop_assert_eq!(Some(found), expected),
                Err(near) => {
                    prop_assert!(near >= from && near <= bytes.len());
                    prop_assert!(expected.is_none_or(|found| found >= near));
                }
            }
        }

        /// Whenever the scanner reads a page (the sample, with a byte replaced, a slice cut out or repeated),
        /// serde_json reads it too, to the same fields.
        #[test]
        fn scanner_answers_only_what_serde_json_agrees_with(
            position in 0usize..19_000, byte in proptest::sample::select(b"{}[]\\\",:0123456789.-+eE \tnulltrue\\u0041ab".to_vec()),
            cut in 0usize..64, duplicate: bool, mutate: bool,
        ) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            if mutate {
                let position = position.min(bytes.len() - 1);
                bytes[position] = byte;
                let end = (position + cut).min(bytes.len());
                if duplicate {
                    let slice = bytes[position..end].to_vec();
                    bytes.splice(position..position, slice);
                } else {
                    bytes.drain(position..end);
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Some(scanned) = scan_page(text)
            {
                prop_assert_eq!(Some(scanned), oracle(text));
            }
        }
    }
}

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

use wide::u8x16;

const MAX_DEPTH: usize = 64;

/// The keys of a record, in the order the Usage API sends them.
const RECORD_KEYS: [&str; 4] = ["id", "name", "type", "properties"];
/// The keys of a record's `properties`, in the order the Usage API sends them.
const PROPERTY_KEYS: [&str; 6] =
    ["subscriptionId", "usageStartTime", "usageEndTime", "instanceData", "quantity", "meterId"];

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

/// Bytes a string search looks at together: two 16-byte vectors.
const BLOCK: usize = 32;

/// Where one block of bytes holds quotes, backslashes and control characters (below 0x20), as bit masks:
/// bit `i` is the block's byte `i`.
#[derive(Clone, Copy)]
struct Block {
    quotes: u32,
    backslashes: u32,
    controls: u32,
}

impl Block {
    /// The block of `bytes` from `at`, padded past their end with spaces (neither quote, backslash nor
    /// control). Controls are looked for only when asked (`controls`): compact pages have none at all.
    fn at(bytes: &[u8], at: usize, controls: bool) -> Self {
        if let Some(full) = bytes.get(at..at + BLOCK) {
            Self::of(full, controls)
        } else {
            let mut padded = [b' '; BLOCK];
            let tail = bytes.get(at..).unwrap_or_default();
            padded[..tail.len()].copy_from_slice(tail);
            Self::of(&padded, controls)
        }
    }

    /// `bytes` holds `BLOCK` bytes. Each 16 are compared at once, and the comparison's byte mask taken as bits
    /// (`wide` turns this into pcmpeqb and pmovmskb on x86-64).
    fn of(bytes: &[u8], controls: bool) -> Self {
        let mut block = Self { quotes: 0, backslashes: 0, controls: 0 };
        for (lane, chunk) in bytes.chunks_exact(16).enumerate() {
            let vector = u8x16::new(<[u8; 16]>::try_from(chunk).unwrap_or_default());
            let shift = 16 * lane;
            block.quotes |= vector.simd_eq(u8x16::splat(b'"')).to_bitmask() << shift;
            block.backslashes |= vector.simd_eq(u8x16::splat(b'\\')).to_bitmask() << shift;
            if controls {
                block.controls |= (vector & u8x16::splat(0xE0)).simd_eq(u8x16::ZERO).to_bitmask() << shift;
            }
        }
        block
    }
}

/// Whether two byte strings of the same short length are equal: two overlapping word loads each instead of a
/// call to `memcmp` (keys are 2 to 14 bytes long).
fn same_short(found: &[u8], wanted: &[u8]) -> bool {
    fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
        bytes.get(at..at + N).and_then(|word| word.try_into().ok()).unwrap_or([0; N])
    }
    let length = wanted.len();
    match length {
        8..=16 => {
            word::<8>(found, 0) == word::<8>(wanted, 0)
                && word::<8>(found, length - 8) == word::<8>(wanted, length - 8)
        }
        4..=7 => {
            word::<4>(found, 0) == word::<4>(wanted, 0)
                && word::<4>(found, length - 4) == word::<4>(wanted, length - 4)
        }
        _ => found == wanted,
    }
}

/// The bits of a block's mask at and above `offset`.
fn from_offset(mask: u32, offset: usize) -> u32 {
    u32::try_from(offset).ok().and_then(|offset| mask.checked_shr(offset)?.checked_shl(offset)).unwrap_or(0)
}

/// The bits of a block's mask below `offset`.
fn below_offset(mask: u32, offset: usize) -> u32 {
    mask & !from_offset(u32::MAX, offset)
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

    /// A string; returns its content (between the quotes) and whether it holds an escape. A block at a time:
    /// the first quote or backslash in the block's masks ends the string or starts an escape, which is checked
    /// and stepped over within the same block; nothing between them is read again.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.expect(b'"')?;
        let start = self.at;
        let mut escaped = false;
        let mut block_start = start;
        loop {
            if block_start >= self.bytes.len() {
                return None;
            }
            let block = Block::at(self.bytes, block_start, !self.clean);
            // Escaped JSON inside a string (`instanceData`) escapes quotes only: when every backslash of the block
            // is followed by a quote within it, the quotes that end the string are the others, found at once.
            let escaped_quotes = block.backslashes << 1;
            if block.backslashes >> (BLOCK - 1) == 0 && escaped_quotes & !block.quotes == 0 {
                let ends = block.quotes & !escaped_quotes;
                if ends == 0 {
                    if block.controls != 0 {
                        return None;
                    }
                    escaped |= block.backslashes != 0;
                    block_start += BLOCK;
                    continue;
                }
                let found = ends.trailing_zeros() as usize;
                if below_offset(block.controls, found) != 0 {
                    return None;
                }
                let at = block_start + found;
                self.at = at + 1;
                return Some((
                    self.text.get(start..at)?,
                    escaped || below_offset(block.backslashes, found) != 0,
                ));
            }
            let mut offset = 0;
            loop {
                let special = from_offset(block.quotes | block.backslashes, offset);
                if special == 0 {
                    // The rest of the block is text. JSON strings hold no control characters.
                    if block.controls != 0 {
                        return None;
                    }
                    block_start += BLOCK;
                    break;
                }
                let found = special.trailing_zeros() as usize;
                let at = block_start + found;
                if block.quotes & (1 << found) != 0 {
                    if below_offset(block.controls, found) != 0 {
                        return None;
                    }
                    self.at = at + 1;
                    return Some((self.text.get(start..at)?, escaped));
                }
                escaped = true;
                let width = match self.bytes.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' => {
                        let digits = self.bytes.get(at + 2..at + 6)?;
                        if !digits.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        6
                    }
                    _ => return None,
                };
                offset = found + width;
                if offset >= BLOCK {
                    // The escape reaches past the block: the next block starts right after it.
                    if block.controls != 0 {
                        return None;
                    }
                    block_start = at + width;
                    break;
                }
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
                self.object(&[], |reader, _| reader.value(depth + 1).map(drop))?;
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
    /// `likely` are the keys the Usage API sends, in its order: when the next key is the one expected at its
    /// place, spelled plainly (`"key"`), it is taken as it is, without a search.
    fn object(
        &mut self,
        likely: &[&'static str],
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut expected = likely.iter();
        loop {
            self.skip_whitespace();
            let key = if let Some(&key) = expected.next().filter(|&&key| self.spelled_plainly(key)) {
                self.at += key.len() + 2;
                key
            } else {
                let (key, escaped) = self.string()?;
                if escaped {
                    // A key spelled with escapes could name a wanted field: let serde_json read it.
                    return None;
                }
                key
            };
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

    /// Whether the text at the reader is `key` between quotes (keys given here hold no quote, backslash or
    /// control character, so that is the whole string, as JSON reads it).
    fn spelled_plainly(&self, key: &str) -> bool {
        let end = self.at + key.len() + 2;
        self.bytes.get(self.at..end).is_some_and(|found| {
            found[0] == b'"'
                && found[end - self.at - 1] == b'"'
                && same_short(&found[1..=key.len()], key.as_bytes())
        })
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
        self.object(&PROPERTY_KEYS, |reader, key| match key {
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
    reader.object(&["value", "nextLink"], |reader, key| {
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
                reader.object(&RECORD_KEYS, |reader, key| {
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

    #[test]
    fn short_comparisons_are_equality() {
        let texts = [
            "",
            "a",
            "id",
            "abc",
            "name",
            "value",
            "meterId",
            "quantity",
            "instanceData",
            "subscriptionId",
            "0123456789abcdef",
            "0123456789abcdefg",
        ];
        for a in texts {
            for b in texts.iter().filter(|b| b.len() == a.len()) {
                assert_eq!(same_short(a.as_bytes(), b.as_bytes()), a == *b);
                for at in 0..a.len() {
                    let mut changed = a.as_bytes().to_vec();
                    changed[at] ^= 1;
                    assert!(!same_short(&changed, a.as_bytes()), "{a} at {at}");
                }
            }
        }
    }

    #[test]
    fn keys_that_only_start_like_the_expected_ones_are_read_whole() {
        let compact: String = SAMPLE.lines().map(str::trim).collect();
        for key in RECORD_KEYS.iter().chain(&PROPERTY_KEYS).chain(&["value"]) {
            for spelling in [format!("\"{key}X\""), format!("\"{key}\\\"\""), format!("\"{key}X")] {
                let text = compact.replacen(&format!("\"{key}\""), &spelling, 1);
                assert!(scan_page(&text).is_none() || scan_page(&text) == oracle(&text), "{spelling}");
            }
        }
    }

    proptest! {
        /// A block's masks are what a byte loop finds, padding included.
        #[test]
        fn block_masks_match_a_byte_loop(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0u8), Just(0x1Fu8), Just(0x20u8), Just(0x80u8), Just(0xFFu8), any::<u8>()], 0..80),
            at in 0usize..80, controls: bool,
        ) {
            let block = Block::at(&bytes, at, controls);
            let mask = |wanted: &dyn Fn(u8) -> bool| {
                (0..BLOCK).filter(|i| bytes.get(at + i).is_some_and(|&byte| wanted(byte))).fold(0u32, |mask, i| mask | 1 << i)
            };
            prop_assert_eq!(block.quotes, mask(&|byte| byte == b'"'));
            prop_assert_eq!(block.backslashes, mask(&|byte| byte == b'\\'));
            prop_assert_eq!(block.controls, if controls { mask(&|byte| byte < 0x20) } else { 0 });
        }

        /// A string reads as serde_json reads it: refused alike, and to the same text and end when read
        /// (escapes, controls, unfinished escapes and strings, at every position across block edges).
        #[test]
        fn strings_read_like_serde_json(
            parts in proptest::collection::vec(prop_oneof![
                Just("\\\"".to_owned()), Just("\\\\".to_owned()), Just("\\n".to_owned()), Just("\\u00e9".to_owned()),
                Just("\\u12".to_owned()), Just("\\x".to_owned()), Just("\\".to_owned()), Just("\"".to_owned()),
                Just("\t".to_owned()), Just("\u{1}".to_owned()), Just("é".to_owned()), "[a-z/:{}]{0,40}",
            ], 0..12),
            clean: bool,
        ) {
            let text = format!("\"{}", parts.concat());
            let clean = clean && !has_control(text.as_bytes());
            let mut reader = Reader { text: &text, bytes: text.as_bytes(), at: 0, clean };
            let read = reader.string().map(|(content, escaped)| (content, escaped, reader.at));
            // serde_json on the same prefix: the shortest prefix that is a whole string.
            let expected = (2..=text.len()).filter(|&end| text.is_char_boundary(end)).find_map(|end| {
                serde_json::from_str::<String>(&text[..end]).ok().map(|_| end)
            });
            match (read, expected) {
                (Some((content, escaped, end)), Some(expected_end)) => {
                    prop_assert_eq!(end, expected_end);
                    prop_assert_eq!(content, &text[1..end - 1]);
                    prop_assert_eq!(escaped, content.contains('\\'));
                }
                (None, None) => {}
                (read, expected) => prop_assert!(false, "read {:?}, serde_json {:?} on {:?}", read, expected, text),
            }
        }

        /// Whenever the scanner reads a page (the sample, with a byte replaced, a slice cut out or repeated),
        /// serde_json reads it too, to the same fields.
        #[test]
        fn scanner_answers_only_what_serde_json_agrees_with(
            position in 0usize..19_000, byte in proptest::sample::select(b"{}[]\\\",:0123456789.-+eE \tnulltrue\\u0041ab".to_vec()),
            cut in prop_oneof![Just(0usize), 0usize..64], duplicate: bool, mutate: bool, compact: bool,
        ) {
            // Compact, the page holds no control character at all (as the Usage API sends it), so strings are
            // read without looking for them.
            let mut bytes =
                if compact { SAMPLE.lines().map(str::trim).collect::<String>().into_bytes() } else { SAMPLE.as_bytes().to_vec() };
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

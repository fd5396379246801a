//! The fast `usage.csv` parser against the simple one (the oracle): on random files (any column order,
//! extra columns, quotes holding commas and newlines, CRLF, padded fields, bad values, unknown
//! subscriptions) cut into random blocks, both give the same quantities and statistics, or the same error.
//! Files with exactly the usual columns in order take the fast path that guesses field widths: they get their
//! own test, with lines of changing widths and random edits (newlines, commas, bytes inserted or removed).

use cms_core::CmsError;
use cms_core::formats::usage_csv::{FastUsageParser, UsageLayout, read_usage, whole_records};
use cms_core::model::time::Period;
use cms_core::rating::{Quantities, UsageAccumulator};
use proptest::prelude::*;

const SUBSCRIPTIONS: [&str; 3] = [
    "0bb4db71-be57-4209-851d-3d24f4c0cf83",
    "8B4AE5F1-A941-46A0-956A-26AFBCCDAFE5",
    "62f90a94-5f56-43c6-8227-6ad5ab2da739",
];
const METERS: [&str; 3] = [
    "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
    "fab6eb84500b4a09a8ca7358f8bbaea5",
    "F271A8A388C44D93956A063E1D2FA80B",
];

fn known(id: &str) -> bool {
    SUBSCRIPTIONS.iter().any(|known| known.eq_ignore_ascii_case(id))
}

#[derive(Debug, Clone)]
enum Cell {
    Plain(String),
    Quoted(String),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Self::Plain(text) => text.clone(),
            Self::Quoted(text) => format!("\"{}\"", text.replace('"', "\"\"")),
        }
    }
}

fn quantity(messy: bool) -> BoxedStrategy<String> {
    let valid = prop_oneof![
        6 => (0u64..100_000_000, 0u32..1_000_000).prop_map(|(whole, fraction)| format!("{whole}.{fraction:06}")),
        2 => (0u64..1000).prop_map(|whole| whole.to_string()),
        2 => (0u64..1000, 0u64..10_000_000).prop_map(|(whole, fraction)| format!("{whole}.{fraction:07}")),
        1 => Just(" 2.5 ".to_owned()),
        1 => Just("1e2".to_owned()),
    ];
    if !messy {
        return valid.boxed();
    }
    prop_oneof![6 => valid, 1 => Just("-1.5".to_owned()), 1 => Just("1,5".to_owned())].boxed()
}

fn time(hour: i64) -> String {
    let instant = chrono::DateTime::from_timestamp(1_790_812_800 + hour * 3600, 0).unwrap_or_default();
    instant.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// One row as (subscription, meter, start, end, quantity, resource, location) cells; a clean row is valid.
fn row(messy: bool) -> impl Strategy<Value = Vec<Cell>> {
    let bad = usize::from(messy);
    (
        0usize..3 + bad,
        0usize..3 + bad,
        -2i64..50,
        (u8::from(!messy) * 2)..20,
        quantity(messy),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(subscription, meter, hour, oddity, quantity, resource, quote_resource)| {
            let subscription =
                SUBSCRIPTIONS.get(subscription).map_or("99999999-0000-4000-8000-000000000000", |id| id);
            let meter = METERS.get(meter).map_or("not-a-meter", |id| id);
            let (start, end) = match oddity {
                0 => ("yesterday".to_owned(), time(hour + 1)),
                1 => (time(hour), time(hour)),
                2 => (time(hour).replace("+00:00", "Z"), time(hour + 1).replace("+00:00", "-01:00")),
                _ => (time(hour), time(hour + 1)),
            };
            let resource =
                ["/subscriptions/x/vm-0", "/subscriptions/X/VM-0", "/subscriptions/x/disk, \"data\"\nsecond"]
                    [resource];
            vec![
                Cell::Plain(subscription.to_owned()),
                Cell::Plain(meter.to_owned()),
                Cell::Plain(start),
                Cell::Plain(end),
                Cell::Plain(quantity),
                if quote_resource || resource.contains([',', '"', '\n']) {
                    Cell::Quoted(resource.to_owned())
                } else {
                    Cell::Plain(resource.to_owned())
                },
                Cell::Plain(if oddity == 3 { " east ".to_owned() } else { "east".to_owned() }),
            ]
        })
}

/// A whole file: header in a permuted order with an extra column, rows, line ends. Half the files are clean
/// (every row valid, so totals are compared), half are messy (bad values, short rows, broken quotes).
fn file() -> impl Strategy<Value = String> {
    any::<bool>()
        .prop_flat_map(|messy| {
            (
                Just([0usize, 1, 2, 3, 4, 5, 6, 7]).prop_shuffle(),
                proptest::collection::vec(row(messy), 0..90), // more than two groups of lines of the fast path
                any::<bool>(),
                proptest::collection::vec(0usize..1000, 0..if messy { 3 } else { 1 }),
            )
        })
        .prop_map(|(order, rows, crlf, short_rows)| {
            let names = [
                "subscription_id",
                "meter_id",
                "usage_start_time",
                "usage_end_time",
                "quantity",
                "resource_uri",
                "location",
                "extra",
            ];
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut text = order.iter().map(|&index| names[index]).collect::<Vec<_>>().join(",");
            text.push_str(newline);
            for (number, cells) in rows.iter().enumerate() {
                let line: Vec<String> = order
                    .iter()
                    .map(|&index| cells.get(index).map_or_else(|| "x".to_owned(), Cell::text))
                    .collect();
                let mut line = line.join(",");
                if short_rows.iter().any(|&short| short % rows.len().max(1) == number) {
                    line = line.rsplit_once(',').map_or(line.clone(), |(head, _)| head.to_owned());
                }
                text.push_str(&line);
                text.push_str(newline);
            }
            text
        })
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn simple(text: &str) -> Result<Quantities, CmsError> {
    let mut accumulator = UsageAccumulator::new(october());
    read_usage(text.as_bytes(), "usage.csv", |row, at| {
        if !known(row.subscription) {
            return Err(CmsError::UnknownSubscription {
                at: at(),
                subscription: row.subscription.to_owned(),
            });
        }
        accumulator.ingest(row, at).map(drop)
    })?;
    Ok(accumulator.finish())
}

fn fast(text: &str, cuts: &[usize]) -> Result<Quantities, CmsError> {
    let bytes = text.as_bytes();
    let header_end = whole_records(
        &bytes[..bytes.iter().position(|&byte| byte == b'\n').map_or(bytes.len(), |at| at + 1)],
    );
    let header = bytes[..header_end].strip_suffix(b"\n").unwrap_or(&bytes[..header_end]);
    let layout = UsageLayout::from_header(header.strip_suffix(b"\r").unwrap_or(header), "usage.csv")?;
    let known_fn: &(dyn Fn(&str) -> bool + Sync) = &known;
    let mut parser = FastUsageParser::new(layout, october(), "usage.csv", known_fn);
    let (mut start, mut line) = (header_end, 2);
    let mut cut_points: Vec<usize> =
        cuts.iter().map(|cut| header_end + cut % (bytes.len() - header_end + 1)).collect();
    cut_points.sort_unstable();
    cut_points.push(bytes.len());
    for cut in cut_points {
        if cut <= start {
            continue;
        }
        let end = if cut == bytes.len() { cut } else { start + whole_records(&bytes[start..cut]) };
        if end <= start {
            continue;
        }
        line += parser.feed(&bytes[start..end], line)?;
        start = end;
    }
    if start < bytes.len() {
        parser.feed(&bytes[start..], line)?;
    }
    Ok(parser.into_accumulator().finish())
}

fn summary(result: Result<Quantities, CmsError>) -> Result<(Vec<String>, String), String> {
    result
        .map(|quantities| {
            let lines = quantities
                .by_meter
                .iter()
                .map(|entry| format!("{} {} {}", entry.subscription, entry.meter, entry.quantity.normalize()))
                .collect();
            let stats = &quantities.stats;
            (
                lines,
                format!(
                    "{} {} {} {} {}",
                    stats.rows, stats.accepted, stats.duplicates, stats.corrections, stats.before_period
                ),
            )
        })
        .map_err(|error| format!("{}: {error}", error.code()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fast_parser_agrees_with_the_simple_one(text in file(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        prop_assert_eq!(summary(fast(&text, &cuts)), summary(simple(&text)), "file:\n{}", text);
    }
}

#[test]
fn a_quoted_newline_keeps_line_numbers() {
    let text = "subscription_id,meter_id,usage_start_time,usage_end_time,quantity,resource_uri,location\n\
        0bb4db71-be57-4209-851d-3d24f4c0cf83,FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5,2026-10-01T00:00:00Z,2026-10-01T01:00:00Z,1,\"/a\nb\",east\n\
        0bb4db71-be57-4209-851d-3d24f4c0cf83,FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5,2026-10-01T00:00:00Z,2026-10-01T01:00:00Z,x,/c,east\n";
    let error = fast(text, &[]).unwrap_err();
    assert_eq!(error.to_string(), simple(text).unwrap_err().to_string());
    assert!(error.to_string().starts_with("usage.csv line 4: bad decimal"), "{error}");
}

#[test]
fn quoted_crlf_records_cut_anywhere_keep_their_lines() {
    let text = "resource_uri,quantity,subscription_id,meter_id,usage_start_time,usage_end_time,location\r\n\"/a\nb\",1,0bb4db71-be57-4209-851d-3d24f4c0cf83,FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5,2026-10-01T00:00:00Z,2026-10-01T01:00:00Z,east\r\n/c,1\r\n";
    for cut in 0..text.len() {
        let fast_error = fast(text, &[cut]).unwrap_err().to_string();
        assert_eq!(fast_error, simple(text).unwrap_err().to_string(), "cut {cut}");
    }
}

/// The fast page reader against the simple path (`parse_page`, then each record), on the sample page with
/// its subscriptions known, mutated anywhere: the same quantities, or the same error.
mod pages {
    use cms_core::CmsError;
    use cms_core::error::Location;
    use cms_core::formats::usage_api::{FastPageParser, parse_page};
    use cms_core::model::time::Period;
    use cms_core::rating::UsageAccumulator;
    use proptest::prelude::*;

    const SAMPLE: &str = include_str!("../../tests/data/azure-stack-hub-sample-usage.json");

    fn known(id: &str) -> bool {
        ["3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11", "7b9d0e42-1c3f-4a6b-8e2d-5f7a9c1b3d22"]
            .iter()
            .any(|known| known.eq_ignore_ascii_case(id))
    }

    fn march() -> Period {
        Period::month(2025, 3).unwrap()
    }

    fn simple(pages: &[Vec<u8>]) -> Result<Vec<String>, String> {
        let mut accumulator = UsageAccumulator::new(march());
        for (number, bytes) in pages.iter().enumerate() {
            let name = format!("page-{number}.json");
            let mut run = || -> Result<(), CmsError> {
                let page = parse_page(bytes, &name)?;
                for (index, record) in page.records.iter().enumerate() {
                    let at = || Location::record(name.clone(), index as u64);
                    if !known(&record.subscription) {
                        return Err(CmsError::UnknownSubscription {
                            at: at(),
                            subscription: record.subscription.clone(),
                        });
                    }
                    accumulator.ingest(&record.as_row(), at)?;
                }
                Ok(())
            };
            run().map_err(|error| error.to_string())?;
        }
        Ok(totals(accumulator))
    }

    fn fast(pages: &[Vec<u8>]) -> Result<Vec<String>, String> {
        let known_fn: &(dyn Fn(&str) -> bool + Sync) = &known;
        let mut parser = FastPageParser::new(march(), known_fn);
        for (number, bytes) in pages.iter().enumerate() {
            parser.feed_page(bytes, &format!("page-{number}.json")).map_err(|error| error.to_string())?;
        }
        Ok(totals(parser.into_accumulator()))
    }

    fn totals(accumulator: UsageAccumulator) -> Vec<String> {
        let quantities = accumulator.finish();
        let mut out: Vec<String> = quantities
            .by_series
            .iter()
            .map(|entry| {
                format!(
                    "{} {} {} {} {}",
                    entry.subscription,
                    entry.meter,
                    entry.resource_uri,
                    entry.location,
                    entry.quantity.normalize()
                )
            })
            .collect();
        let stats = &quantities.stats;
        out.push(format!("{} {} {} {}", stats.rows, stats.accepted, stats.duplicates, stats.corrections));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn fast_pages_agree_with_the_simple_path(
            edits in proptest::collection::vec((0usize..19_000, proptest::sample::select(b"{}[]\\\",:0123456789.-e tnu".to_vec()), 0usize..40, any::<bool>()), 0..3),
            repeat: bool,
        ) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            for (position, byte, cut, duplicate) in edits {
                let position = position.min(bytes.len().saturating_sub(1));
                if bytes.is_empty() { break; }
                bytes[position] = byte;
                let end = (position + cut).min(bytes.len());
                if duplicate {
                    let slice = bytes[position..end].to_vec();
                    bytes.splice(position..position, slice);
                } else {
                    bytes.drain(position..end);
                }
            }
            let mut pages = vec![SAMPLE.as_bytes().to_vec(), bytes];
            if repeat {
                pages.push(SAMPLE.as_bytes().to_vec());
            }
            prop_assert_eq!(fast(&pages), simple(&pages));
        }

        /// Arbitrary bytes as a page: the fast reader does not panic, and gives what the simple path gives
        /// (the same totals when it accepts, the same error when it refuses).
        #[test]
        fn arbitrary_bytes_as_a_page(bytes in proptest::collection::vec(any::<u8>(), 0..2048), first: bool) {
            let pages = if first { vec![bytes] } else { vec![SAMPLE.as_bytes().to_vec(), bytes] };
            let fast_result = fast(&pages);
            let simple_result = simple(&pages);
            if fast_result.is_ok() {
                prop_assert!(simple_result.is_ok(), "fast accepted what parse_page refuses: {simple_result:?}");
            }
            prop_assert_eq!(fast_result, simple_result);
        }

        /// Arbitrary bytes (or text) spliced into the sample page anywhere, replacing up to 64 bytes: the same.
        #[test]
        fn arbitrary_bytes_spliced_into_a_page(
            position in 0usize..19_000,
            cut in 0usize..64,
            inserted in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                ".{0,16}".prop_map(String::into_bytes),
            ],
            repeat: bool,
        ) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            let position = position.min(bytes.len());
            let end = (position + cut).min(bytes.len());
            bytes.splice(position..end, inserted);
            let mut pages = vec![bytes];
            if repeat {
                pages.push(SAMPLE.as_bytes().to_vec());
            }
            let fast_result = fast(&pages);
            let simple_result = simple(&pages);
            if fast_result.is_ok() {
                prop_assert!(simple_result.is_ok(), "fast accepted what parse_page refuses: {simple_result:?}");
            }
            prop_assert_eq!(fast_result, simple_result);
        }
    }
}

/// The usual seven columns, in order: the lines the fast path splits by guessing widths. Rows change width
/// (meter spellings with and without dashes, `Z` and `+00:00` times, resources and locations of several
/// lengths, subscriptions in either case), and some lines are edited: a newline, a comma, a carriage return
/// or another byte inserted, a byte removed, or the line cut after one of its fields (so guessed widths cross line ends, lines come short
/// or long, and spellings are new).
fn in_order_file() -> impl Strategy<Value = String> {
    let line = (
        0usize..4,
        0usize..3,
        -2i64..40,
        any::<bool>(),
        (0u64..100_000, 0u32..1_000_000),
        0usize..6,
        0usize..3,
        proptest::option::weighted(
            0.15,
            (any::<usize>(), 0u8..3, proptest::sample::select(b"\n,\r.0x-Z:".to_vec())),
        ),
    )
        .prop_map(|(subscription, meter, hour, zulu, (whole, fraction), resource, location, edit)| {
            let subscription = match subscription {
                3 => SUBSCRIPTIONS[0].to_uppercase(),
                index => SUBSCRIPTIONS[index].to_owned(),
            };
            let stamp = |hour: i64| if zulu { time(hour).replace("+00:00", "Z") } else { time(hour) };
            // The 47- and 48-byte resources reach, from a row of resource `/s/d` and location `local`, the
            // comma after the next line's subscription (LF and CRLF files): a guessed width that crosses lines.
            let resource = [
                "/subscriptions/x/vm-0",
                "/subscriptions/x/virtualMachines/vm-12",
                "/s/d",
                "",
                "/s/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
                "/s/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
            ][resource];
            let location = ["local", "region-east", ""][location];
            let mut line = format!(
                "{subscription},{},{},{},{whole}.{fraction:06},{resource},{location}",
                METERS[meter],
                stamp(hour),
                stamp(hour + 1)
            )
            .into_bytes();
            match edit {
                Some((at, 0, byte)) => line.insert(at % (line.len() + 1), byte),
                Some((at, 1, _)) if !line.is_empty() => {
                    line.remove(at % line.len());
                }
                Some((fields, _, _)) => {
                    // Only the first fields: a short line, where a guess from a longer line before may land.
                    let keep = 1 + fields % 6;
                    let cut = line
                        .iter()
                        .enumerate()
                        .filter(|(_, byte)| **byte == b',')
                        .nth(keep - 1)
                        .map(|(at, _)| at);
                    line.truncate(cut.unwrap_or(line.len()));
                }
                None => {}
            }
            line
        });
    (proptest::collection::vec(line, 0..90), any::<bool>(), any::<bool>())
        .prop_map(|(lines, crlf, last_newline)| {
            let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut text = USAGE_HEADER.as_bytes().to_vec();
            text.extend_from_slice(newline);
            for (number, line) in lines.iter().enumerate() {
                text.extend_from_slice(line);
                if last_newline || number + 1 < lines.len() {
                    text.extend_from_slice(newline);
                }
            }
            String::from_utf8_lossy(&text).into_owned()
        })
        // Known difference: after a blank line the simple path (the csv crate, which skips blank lines) names a
        // later record by the blank line's number, the fast path by the record's own line. Both refuse the same
        // record with the same code; the test leaves blank lines out.
        .prop_filter("a blank line", |text| {
            let lines = text.replace("\r\n", "\n").replace('\r', "\n");
            !lines.trim_end_matches('\n').contains("\n\n")
        })
}

const USAGE_HEADER: &str =
    "subscription_id,meter_id,usage_start_time,usage_end_time,quantity,resource_uri,location";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn guessed_widths_agree_with_the_simple_parser(text in in_order_file(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        prop_assert_eq!(summary(fast(&text, &cuts)), summary(simple(&text)), "file:\n{}", text);
    }
}

/// A guessed resource width that reaches, across the line end, the comma after a short next line's
/// subscription: the line must be found again by its newline, not accepted with a resource holding it.
#[test]
fn a_guessed_width_across_a_line_end_is_not_trusted() {
    let (subscription, meter) = (SUBSCRIPTIONS[0], METERS[0]);
    for newline in ["\n", "\r\n"] {
        let long = if newline == "\n" { 47 } else { 48 };
        let row = |resource: &str, hour: i64| {
            format!("{subscription},{meter},{},{},1.5,{resource},local{newline}", time(hour), time(hour + 1))
        };
        let text = [
            format!("{USAGE_HEADER}{newline}"),
            row(&format!("/s/{}", "v".repeat(long - 3)), 0),
            row("/s/d", 1),
            format!("{subscription},{meter}{newline}"),
        ]
        .concat();
        let expected =
            Err("bad_record: usage.csv line 4: bad record: 2 fields where the header has 7".to_owned());
        assert_eq!(summary(simple(&text)).map(drop), expected);
        assert_eq!(summary(fast(&text, &[])).map(drop), expected, "{newline:?}");
    }
}

//! FOCUS Parquet files whose page headers declare hostile sizes are refused before anything is decoded: a
//! typed error naming the column, never a panic, and no allocation of what the header declares (the largest
//! allocation of the reading thread is measured by this binary's allocator).
#![cfg(feature = "parquet")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use cms_core::CmsError;
use cms_core::formats::focus::MANDATORY_COLUMNS;
use cms_core::formats::focus_parquet::{MAX_PARQUET_PAGE_BYTES, read_focus_parquet, read_focus_parquet_file};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// The system allocator, remembering the largest allocation each thread asked for.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded to `System` unchanged; only the requested size is noted.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The largest allocation this thread makes while `run` runs.
fn largest_allocation<T>(run: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let value = run();
    (value, LARGEST.with(Cell::get))
}

/// A FOCUS file of one valid row (every mandatory column a string), plus `x_Note` holding `note`, written
/// with `properties`.
fn focus_file(note: &[u8], properties: WriterProperties) -> Vec<u8> {
    let mut cells: Vec<(String, Vec<u8>)> = MANDATORY_COLUMNS
        .iter()
        .map(|column| {
            let value = match *column {
                "BilledCost" | "ContractedCost" | "EffectiveCost" | "ListCost" | "PricingQuantity" => "1.5",
                "BillingCurrency" => "USD",
                "BillingPeriodStart" | "ChargePeriodStart" => "2025-05-01T00:00:00Z",
                "BillingPeriodEnd" => "2025-06-01T00:00:00Z",
                "ChargePeriodEnd" => "2025-05-01T01:00:00Z",
                "ChargeCategory" => "Usage",
                "ChargeClass" => "",
                "ServiceCategory" => "Compute",
                _ => "x",
            };
            ((*column).to_owned(), value.as_bytes().to_vec())
        })
        .collect();
    cells.push(("x_Note".to_owned(), note.to_vec()));
    let fields: Vec<String> =
        cells.iter().map(|(name, _)| format!("optional binary {name} (STRING);")).collect();
    let schema = Arc::new(parse_message_type(&format!("message focus {{ {} }}", fields.join(" "))).unwrap());
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(properties)).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for (_, value) in &cells {
        let mut column = group.next_column().unwrap().unwrap();
        let (values, definition) = if value.is_empty() {
            (vec![], vec![0])
        } else {
            (vec![ByteArray::from(value.clone())], vec![1])
        };
        column.typed::<ByteArrayType>().write_batch(&values, Some(&definition), None).unwrap();
        column.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
    out
}

/// Where the page header of `x_Note`'s first page starts: its dictionary page if it has one.
fn note_chunk_start(file: &[u8]) -> usize {
    let reader = SerializedFileReader::new(bytes::Bytes::from(file.to_vec())).unwrap();
    let group = reader.metadata().row_group(0);
    let column = group.columns().iter().find(|column| column.column_path().string() == "x_Note").unwrap();
    usize::try_from(column.dictionary_page_offset().unwrap_or_else(|| column.data_page_offset())).unwrap()
}

/// The Thrift compact varint at `at`: its value and length in bytes.
fn varint(bytes: &[u8], at: usize) -> (u64, usize) {
    let mut value = 0;
    for (index, byte) in bytes[at..].iter().enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return (value, index + 1);
        }
    }
    panic!("no varint at {at}");
}

/// `value` as a varint of exactly `length` bytes (it must fit).
fn varint_of(mut value: u64, length: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for index in 0..length {
        let more = index + 1 < length;
        out.push(u8::try_from(value & 0x7F).unwrap() | if more { 0x80 } else { 0 });
        value >>= 7;
    }
    assert_eq!(value, 0, "does not fit in {length} bytes");
    out
}

fn read(bytes: Vec<u8>) -> (Result<usize, CmsError>, usize) {
    largest_allocation(|| {
        let mut rows = 0;
        read_focus_parquet(bytes, "hostile.parquet", |_, _| {
            rows += 1;
            Ok(())
        })
        .map(|_| rows)
    })
}

#[test]
fn a_page_declaring_a_huge_uncompressed_size_is_refused_before_allocating_it() {
    // Snappy-compressed, no dictionary: the note's data page is 1.5 MiB of 'a' uncompressed, a few KiB
    // compressed, and its uncompressed size is a 4-byte varint in the page header.
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .build();
    let file = focus_file(&vec![b'a'; 3 << 19], properties);
    assert!(file.len() < 1 << 20, "compressed: {} bytes", file.len());
    let (rows, largest) = read(file.clone());
    assert_eq!(rows.unwrap(), 1);
    assert!(largest >= 3 << 19, "the honest page is decompressed: {largest}");

    // The header: type (field 1, DATA_PAGE), then uncompressed_page_size (field 2, zigzag varint).
    let start = note_chunk_start(&file);
    assert_eq!(file[start..start + 3], [0x15, 0x00, 0x15]);
    let (zigzag, length) = varint(&file, start + 3);
    assert!(zigzag / 2 >= 3 << 19 && length == 4, "zigzag 1.5 MiB plus the levels, in 4 bytes");
    let declared: u64 = (1 << 27) - 1;
    assert!(declared > MAX_PARQUET_PAGE_BYTES);
    let mut hostile = file.clone();
    hostile.splice(start + 3..start + 3 + length, varint_of(declared * 2, length));

    let (outcome, largest) = read(hostile.clone());
    let error = outcome.unwrap_err();
    assert_eq!(error.code(), "bad_record");
    assert_eq!(
        error.to_string(),
        format!(
            "hostile.parquet: bad record: corrupt Parquet file: column x_Note of row group 0: the page at byte \
             {start} declares an uncompressed size of {declared}, over the limit of {MAX_PARQUET_PAGE_BYTES} \
             bytes a page may hold"
        )
    );
    assert!(largest < file.len() * 4, "nothing near the declared size is allocated: {largest} bytes");

    // The same from a file on disk.
    let path = std::env::temp_dir().join(format!("cms-hostile-{}.parquet", std::process::id()));
    std::fs::write(&path, &hostile).unwrap();
    let (outcome, largest) = largest_allocation(|| {
        read_focus_parquet_file(std::fs::File::open(&path).unwrap(), "hostile.parquet", |_, _| Ok(()))
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(outcome.unwrap_err().to_string(), error.to_string());
    assert!(largest < 1 << 20, "{largest} bytes");
}

#[test]
fn page_headers_lying_about_sizes_are_refused() {
    // Uncompressed with a dictionary: the note's chunk starts with a dictionary page of one 100-byte value.
    let properties = WriterProperties::builder().set_compression(Compression::UNCOMPRESSED).build();
    let file = focus_file(&[b'n'; 100], properties);
    assert_eq!(read(file.clone()).0.unwrap(), 1);
    let start = note_chunk_start(&file);
    // type DICTIONARY_PAGE (2, zigzag 4), uncompressed and compressed sizes (104 = 4 + 100, zigzag 208).
    assert_eq!(file[start..start + 8], [0x15, 0x04, 0x15, 0xD0, 0x01, 0x15, 0xD0, 0x01]);
    let error_of = |patch: &dyn Fn(&mut Vec<u8>)| {
        let mut hostile = file.clone();
        patch(&mut hostile);
        let error = read(hostile).0.unwrap_err();
        assert_eq!(error.code(), "bad_record");
        let message = error.to_string();
        let prefix = "hostile.parquet: bad record: corrupt Parquet file: column x_Note of row group 0: ";
        assert!(message.starts_with(prefix), "{message}");
        message[prefix.len()..].to_owned()
    };
    let page = format!("the page at byte {start} declares");

    // A compressed size past the end of the column chunk, or negative.
    let message = error_of(&|bytes| bytes[start + 6..start + 8].copy_from_slice(&[0xFE, 0x7F]));
    assert!(
        message.starts_with(&format!("{page} a compressed size of 8191, more than the "))
            && message.ends_with(" bytes left in its column chunk"),
        "{message}"
    );
    let message = error_of(&|bytes| bytes[start + 6..start + 8].copy_from_slice(&[0xFD, 0x7F]));
    assert!(message.starts_with(&format!("{page} a compressed size of -8191, more than the ")), "{message}");
    let message = error_of(&|bytes| bytes[start + 3..start + 5].copy_from_slice(&[0xFD, 0x7F]));
    assert!(
        message.starts_with(&format!("{page} an uncompressed size of -8191, over the limit")),
        "{message}"
    );

    // A dictionary of more values than its 104 bytes can hold (26 byte arrays at the most).
    assert_eq!(file[start + 8..start + 11], [0x4C, 0x15, 0x02], "field 7, its field 1: 1 value");
    let message = error_of(&|bytes| bytes[start + 10] = 0x7E);
    assert_eq!(message, format!("{page} a dictionary of 63, more than the 26 its 104 bytes can hold"));

    // A header that runs past its chunk: field 7 turned into field 6 (skipped) of type binary, 2 GiB long.
    let message = error_of(&|bytes| {
        bytes.splice(start + 8..start + 10, [0x38, 0xFF, 0xFF, 0xFF, 0xFF, 0x07]);
    });
    assert_eq!(
        message,
        format!(
            "unreadable page header at byte {start}: a length of 2147483647 bytes runs past the end of its \
             column chunk"
        )
    );
}

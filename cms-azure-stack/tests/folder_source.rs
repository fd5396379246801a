//! Exported page folders (disconnected stamps).

mod common;

use std::fs;

use cms_azure_stack::{PageFolderSource, read_page_file};
use cms_core::CmsError;
use cms_core::error::Position;
use cms_core::formats::usage_api::MAX_PAGE_BYTES;
use cms_core::source::UsageSource;
use common::{SAMPLE_PAGE, drain, page, record};

#[test]
fn reads_json_files_in_file_name_order() {
    let folder = tempfile::tempdir().unwrap();
    // Written out of order, with a file that is not a page, as gen_month.py --json-pages names them.
    let second = page(
        &[record("sub-b", "2025-03-10T14:00:00Z", "3"), record("sub-b", "2025-03-10T15:00:00Z", "4")],
        Some("page-000002.json"),
    );
    fs::write(folder.path().join("page-000001.json"), second).unwrap();
    fs::write(
        folder.path().join("page-000002.JSON"),
        page(&[record("sub-c", "2025-03-10T16:00:00Z", "5")], None),
    )
    .unwrap();
    fs::write(folder.path().join("page-000000.json"), SAMPLE_PAGE).unwrap();
    fs::write(folder.path().join("README.txt"), "not a page").unwrap();

    let mut source = PageFolderSource::open(folder.path()).unwrap().with_region("disconnected-1");
    assert_eq!(source.remaining().len(), 3);
    let pages = drain(&mut source).unwrap();
    let names: Vec<&str> = pages.iter().map(|page| page.origin.name.as_str()).collect();
    assert_eq!(names, ["page-000000.json", "page-000001.json", "page-000002.JSON"]);
    let counts: Vec<usize> = pages.iter().map(|page| page.page.records.len()).collect();
    assert_eq!(counts, [20, 2, 1]);
    for page in &pages {
        assert_eq!(page.origin.region, "disconnected-1");
        assert_eq!(page.origin.subscriber, None);
        assert_eq!(page.origin.window, None);
        assert!(!page.origin.completes_window, "loose pages set no checkpoint");
    }
    assert_eq!(pages[1].page.records[0].subscription, "sub-b");
    assert!(source.remaining().is_empty());
    assert!(source.next_page().unwrap().is_none());
}

#[test]
fn a_bad_page_names_the_file_and_record() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(
        folder.path().join("page-000000.json"),
        page(&[record("sub-a", "2025-03-10T13:00:00Z", "1")], None),
    )
    .unwrap();
    let bad = page(
        &[record("sub-a", "2025-03-10T13:00:00Z", "1"), record("sub-a", "2025-03-10T14:00:00Z", "-1.5")],
        None,
    );
    fs::write(folder.path().join("page-000001.json"), bad).unwrap();
    let mut source = PageFolderSource::open(folder.path()).unwrap();
    assert_eq!(source.next_page().unwrap().unwrap().origin.name, "page-000000.json");
    for _ in 0..2 {
        // The error stays put: asking again reads the same file again, nothing is skipped.
        match source.next_page().unwrap_err() {
            CmsError::NegativeQuantity { at, quantity, .. } => {
                assert_eq!(at.source, "page-000001.json");
                assert_eq!(at.position, Position::Record(1));
                assert_eq!(quantity, "-1.5");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // A truncated page is bad JSON naming the file.
    let folder = tempfile::tempdir().unwrap();
    fs::write(folder.path().join("page-000000.json"), &SAMPLE_PAGE[..SAMPLE_PAGE.len() / 3]).unwrap();
    let error = PageFolderSource::open(folder.path()).unwrap().next_page().unwrap_err();
    assert_eq!(error.code(), "bad_json");
    assert!(error.to_string().starts_with("page-000000.json: bad JSON"), "{error}");
}

#[test]
fn unreadable_files_and_folders_are_io_errors() {
    let folder = tempfile::tempdir().unwrap();
    // A folder named like a page cannot be read as one.
    fs::create_dir(folder.path().join("page-000000.json")).unwrap();
    let error = PageFolderSource::open(folder.path()).unwrap().next_page().unwrap_err();
    match &error {
        CmsError::Io { at, .. } => assert!(at.source.ends_with("page-000000.json"), "{error}"),
        other => panic!("unexpected {other:?}"),
    }

    let missing = folder.path().join("no-such-folder");
    match PageFolderSource::open(&missing).unwrap_err() {
        CmsError::Io { at, .. } => assert!(at.source.ends_with("no-such-folder")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_empty_folder_has_no_pages() {
    let folder = tempfile::tempdir().unwrap();
    let mut source = PageFolderSource::open(folder.path()).unwrap();
    assert!(source.next_page().unwrap().is_none());
}

/// A sparse file of `length` bytes (no data written: reading it whole would cost `length` bytes of memory).
fn sparse(path: &std::path::Path, length: u64) {
    fs::File::create(path).unwrap().set_len(length).unwrap();
}

#[test]
fn oversized_page_files_are_refused_by_their_length() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(
        folder.path().join("page-000000.json"),
        page(&[record("sub-a", "2025-03-10T13:00:00Z", "1")], None),
    )
    .unwrap();
    // One byte over the limit, then 16 GiB: both refused from their length, the second without the memory a
    // whole read would need.
    sparse(&folder.path().join("page-000001.json"), MAX_PAGE_BYTES as u64 + 1);
    sparse(&folder.path().join("page-000002.json"), 16 << 30);
    let mut source = PageFolderSource::open(folder.path()).unwrap();
    assert_eq!(source.next_page().unwrap().unwrap().page.records.len(), 1);
    for _ in 0..2 {
        // The refusal stays put, as for any bad page.
        match source.next_page().unwrap_err() {
            CmsError::BadJson { at, message } => {
                assert_eq!(at.source, "page-000001.json");
                assert_eq!(at.position, Position::Whole);
                assert_eq!(
                    message,
                    format!(
                        "page of {} bytes exceeds the limit of {MAX_PAGE_BYTES} bytes",
                        MAX_PAGE_BYTES + 1
                    )
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let huge = folder.path().join("page-000002.json");
    let error = read_page_file(&huge, "huge.json").unwrap_err();
    assert_eq!(error.code(), "bad_json");
    assert!(error.to_string().starts_with("huge.json: "), "{error}");
    assert!(error.to_string().contains(&format!("page of {} bytes", 16_u64 << 30)), "{error}");

    // A page of exactly the limit is read (and then refused by the parser as the JSON it is not).
    let at_limit = folder.path().join("at-limit.json");
    sparse(&at_limit, MAX_PAGE_BYTES as u64);
    assert_eq!(read_page_file(&at_limit, "at-limit.json").unwrap().len(), MAX_PAGE_BYTES);
}

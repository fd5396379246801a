//! The month-end's usage on every core: the file is read in large blocks cut at record boundaries, worker
//! threads parse them into accumulators of their own (the core's fast parsers), and the accumulators are
//! merged. The core stays single-threaded and pure; this module owns threads and files.
//!
//! Exactness: blocks may land on any worker, so two rows with one natural key may be counted by different
//! workers; merging keeps one of them, as one thread would. Only the *order* of conflicting rows (a
//! correction: the same key with another quantity) is lost across workers, so when the merged run saw any
//! correction, the usage is read once more on one thread, where the later row wins as the rules say.
//!
//! Errors: the first bad record in file order is reported, as the single-threaded path would: a worker
//! that finds an error records its line, and every worker still parses the blocks that start before it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

use cms_core::CmsError;
use cms_core::error::{Location, Position};
use cms_core::formats::csv_input::MAX_RECORD_BYTES;
use cms_core::formats::usage_api::FastPageParser;
use cms_core::formats::usage_csv::{FastUsageParser, UsageLayout, needs_csv_reader, whole_records};
use cms_core::model::time::Period;
use cms_core::rating::UsageAccumulator;

use super::io_error;

/// Bytes read at a time.
const BLOCK_BYTES: usize = 4 << 20;

/// Which subscriptions are in the channel.
pub type Known<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// The line an error names, for picking the first one in file order (errors without a line sort last).
fn error_line(error: &CmsError) -> u64 {
    let location = match error {
        CmsError::BadRecord { at, .. }
        | CmsError::BadDecimal { at, .. }
        | CmsError::BadTimestamp { at, .. }
        | CmsError::BadMeterId { at, .. }
        | CmsError::NegativeQuantity { at, .. }
        | CmsError::BadInterval { at, .. }
        | CmsError::UnknownSubscription { at, .. } => Some(at),
        _ => None,
    };
    match location.map(|at| &at.position) {
        Some(Position::Line(line) | Position::Record(line)) => *line,
        _ => u64::MAX,
    }
}

/// Merge worker accumulators; if the usage held corrections, run `again` on one thread instead.
fn merged(
    accumulators: Vec<UsageAccumulator>,
    again: impl FnOnce() -> Result<UsageAccumulator, CmsError>,
) -> Result<UsageAccumulator, CmsError> {
    let mut parts = accumulators.into_iter();
    let Some(mut total) = parts.next() else { return again() };
    // A worker that saw a correction already says the order matters.
    if total.stats().corrections > 0 {
        return again();
    }
    for part in parts {
        total.merge(part)?;
    }
    if total.stats().corrections > 0 { again() } else { Ok(total) }
}

/// The accumulator of a one-worker run (already in file order, corrections included).
fn single(accumulators: Vec<UsageAccumulator>, period: Period) -> UsageAccumulator {
    accumulators.into_iter().next().unwrap_or_else(|| UsageAccumulator::new(period))
}

/// `usage.csv` on `threads` workers.
pub fn csv_usage(
    path: &Path,
    period: Period,
    known: Known<'_>,
    threads: usize,
) -> Result<UsageAccumulator, CmsError> {
    let threads = threads.max(1);
    let accumulators = match read_at_workers(path, period, known, threads)? {
        Some(accumulators) => accumulators,
        // The file has quotes (or a lone `\r`): one reader cuts blocks only between records, where quote
        // parity allows.
        None => quoted_csv_workers(path, period, known, threads)?,
    };
    if threads == 1 {
        return Ok(single(accumulators, period));
    }
    merged(accumulators, || csv_usage(path, period, known, 1))
}

/// What a worker did with one block.
enum Failure {
    /// A bad record: the error with its line relative to the block (line 1 is the block's first line).
    Bad { block: usize, error: CmsError },
    /// The block holds a quote (or a lone `\r`, see `needs_csv_reader`) but was cut at any newline (by
    /// `read_at_workers`).
    Quoted,
}

/// What the workers share.
struct Shared<'a> {
    layout: UsageLayout,
    period: Period,
    known: Known<'a>,
    /// The lowest block that failed (`usize::MAX`: none).
    failed_block: AtomicUsize,
    /// Lines of each parsed block, by block number.
    line_counts: Mutex<Vec<u64>>,
    blocks: Mutex<mpsc::Receiver<(Vec<u8>, usize)>>,
}

/// One worker: parse blocks until the reader is done, counting each block's lines.
fn csv_worker(shared: &Shared<'_>, recycle: &mpsc::Sender<Vec<u8>>) -> Result<UsageAccumulator, Failure> {
    let mut parser = FastUsageParser::new(shared.layout, shared.period, "usage.csv", shared.known);
    loop {
        let next = shared.blocks.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((block, index)) = next else { break };
        if index > shared.failed_block.load(Ordering::Relaxed) {
            continue;
        }
        let fed =
            if needs_csv_reader(&block) { parser.feed(&block, 1) } else { parser.feed_unquoted(&block, 1) };
        match fed {
            Ok(lines) => {
                let mut counts = shared.line_counts.lock().unwrap_or_else(PoisonError::into_inner);
                if counts.len() <= index {
                    counts.resize(index + 1, 0);
                }
                counts[index] = lines;
            }
            Err(error) => {
                shared.failed_block.fetch_min(index, Ordering::Relaxed);
                return Err(Failure::Bad { block: index, error });
            }
        }
        // Give the buffer back: the reader refills it without allocating or zeroing.
        let _ = recycle.send(block);
    }
    Ok(parser.into_accumulator())
}

/// Reads `usage.csv` `BLOCK_BYTES` at a time.
struct BlockReader<'a> {
    file: File,
    path: &'a Path,
}

impl BlockReader<'_> {
    fn read(&mut self, block: &mut Vec<u8>) -> Result<usize, CmsError> {
        // `read_to_end` fills the vector's spare capacity without zeroing it first.
        (&mut self.file)
            .take(BLOCK_BYTES as u64)
            .read_to_end(block)
            .map_err(|error| io_error(self.path, &error))
    }

    /// The layout from the header, and where the data starts in the file.
    fn header_offset(&mut self) -> Result<(UsageLayout, u64), CmsError> {
        let (layout, carry, header_end) = self.header_and_rest()?;
        drop(carry);
        Ok((layout, header_end))
    }

    /// The layout from the header, and what was read past it.
    fn header(&mut self) -> Result<(UsageLayout, Vec<u8>), CmsError> {
        let (layout, carry, _) = self.header_and_rest()?;
        Ok((layout, carry))
    }

    /// The layout from the header, what was read past it, and the header's length in bytes.
    fn header_and_rest(&mut self) -> Result<(UsageLayout, Vec<u8>, u64), CmsError> {
        let mut carry = Vec::with_capacity(BLOCK_BYTES);
        let header_end = loop {
            let count = self.read(&mut carry)?;
            if let Some(end) = header_end(&carry) {
                break end;
            }
            if count == 0 {
                break carry.len();
            }
            if carry.len() as u64 > MAX_RECORD_BYTES {
                return Err(too_long(1));
            }
        };
        let bom = if carry.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
        let header = &carry[bom..header_end];
        let header = header.strip_suffix(b"\n").unwrap_or(header);
        let header = header.strip_suffix(b"\r").unwrap_or(header);
        let layout = UsageLayout::from_header(header, "usage.csv")?;
        carry.drain(..header_end);
        Ok((layout, carry, header_end as u64))
    }

    /// Send numbered blocks, cut between records, until the file ends or a worker fails.
    fn send_blocks(
        &mut self,
        mut carry: Vec<u8>,
        sender: &mpsc::SyncSender<(Vec<u8>, usize)>,
        recycled: &mpsc::Receiver<Vec<u8>>,
        failed_block: &AtomicUsize,
    ) -> Result<(), CmsError> {
        for index in 0.. {
            let mut block = recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(2 * BLOCK_BYTES));
            block.clear();
            block.append(&mut carry);
            let count = self.read(&mut block)?;
            let cut = if count == 0 { block.len() } else { whole_records(&block) };
            carry.extend_from_slice(&block[cut..]);
            block.truncate(cut);
            if carry.len() as u64 > MAX_RECORD_BYTES {
                return Err(too_long(0));
            }
            if !block.is_empty() && sender.send((block, index)).is_err() {
                break;
            }
            if count == 0 || failed_block.load(Ordering::Relaxed) != usize::MAX {
                break;
            }
        }
        Ok(())
    }
}

/// `usage.csv` with quotes: one reader cuts it into blocks between records (counting quotes) and `threads`
/// workers parse them. Blocks are numbered and workers count their lines, so the reader never counts
/// lines, and an error in block k gets its absolute line once every block before k is counted.
fn quoted_csv_workers(
    path: &Path,
    period: Period,
    known: Known<'_>,
    threads: usize,
) -> Result<Vec<UsageAccumulator>, CmsError> {
    let mut reader = BlockReader { file: File::open(path).map_err(|error| io_error(path, &error))?, path };
    let (layout, carry) = reader.header()?;
    let (sender, receiver) = mpsc::sync_channel::<(Vec<u8>, usize)>(threads);
    let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
    let shared = Shared {
        layout,
        period,
        known,
        failed_block: AtomicUsize::new(usize::MAX),
        line_counts: Mutex::new(Vec::new()),
        blocks: Mutex::new(receiver),
    };
    let (outcomes, read_result) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (shared, recycle) = (&shared, recycle.clone());
                scope.spawn(move || csv_worker(shared, &recycle))
            })
            .collect();
        drop(recycle);
        let read_result = reader.send_blocks(carry, &sender, &recycled, &shared.failed_block);
        drop(sender);
        let outcomes: Vec<_> = workers.into_iter().map(std::thread::ScopedJoinHandle::join).collect();
        (outcomes, read_result)
    });
    let accumulators = finish_workers(outcomes, &shared.line_counts)?;
    read_result?;
    Ok(accumulators.unwrap_or_default())
}

/// Bytes each worker reads at a time: small enough that a block is still in the core's cache when it is
/// parsed, right after the read copied it there.
const OWN_BLOCK_BYTES: u64 = 1 << 20;

/// `usage.csv` read and parsed by the workers themselves, each taking the next 1 MiB of the file: no reader
/// thread, no hand-over between cores. A block owns the records that start in it (the record cut by its
/// start belongs to the block before). Works for files without quotes; `None` when a quote (or a lone `\r`)
/// turns up (the caller then cuts blocks between records on one reader thread).
fn read_at_workers(
    path: &Path,
    period: Period,
    known: Known<'_>,
    threads: usize,
) -> Result<Option<Vec<UsageAccumulator>>, CmsError> {
    use std::os::unix::fs::FileExt;

    let mut reader = BlockReader { file: File::open(path).map_err(|error| io_error(path, &error))?, path };
    let (layout, header_end) = reader.header_offset()?;
    let file = &reader.file;
    let length = file.metadata().map_err(|error| io_error(path, &error))?.len();
    let blocks =
        usize::try_from((length.saturating_sub(header_end)).div_ceil(OWN_BLOCK_BYTES)).unwrap_or(usize::MAX);
    let next = AtomicUsize::new(0);
    let failed_block = AtomicUsize::new(usize::MAX);
    let line_counts = Mutex::new(vec![0u64; blocks]);
    // Read `count` bytes at `from` into `buffer[filled..]`, returning the new fill. The buffer only grows
    // (zeroed once), so reading a block costs no clearing.
    let read = |buffer: &mut Vec<u8>, filled: usize, from: u64, count: u64| -> Result<usize, CmsError> {
        let wanted = usize::try_from(count.min(length.saturating_sub(from))).unwrap_or(0);
        if buffer.len() < filled + wanted {
            buffer.resize(filled + wanted, 0);
        }
        file.read_exact_at(&mut buffer[filled..filled + wanted], from)
            .map_err(|error| io_error(path, &error))?;
        Ok(filled + wanted)
    };
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, failed_block, line_counts, read) = (&next, &failed_block, &line_counts, &read);
                scope.spawn(move || -> Result<UsageAccumulator, Failure> {
                    let mut parser = FastUsageParser::new(layout, period, "usage.csv", known);
                    let mut buffer = Vec::with_capacity(usize::try_from(2 * OWN_BLOCK_BYTES).unwrap_or(0));
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= blocks || index > failed_block.load(Ordering::Relaxed) {
                            break;
                        }
                        let start = header_end + index as u64 * OWN_BLOCK_BYTES;
                        let end = (start + OWN_BLOCK_BYTES).min(length);
                        // One byte before the block tells whether a record starts at its first byte.
                        let read_from = if index == 0 { start } else { start - 1 };
                        let fail = |error: CmsError| Failure::Bad { block: index, error };
                        let mut filled = read(&mut buffer, 0, read_from, end - read_from).map_err(fail)?;
                        // Finish the record cut by the block's end.
                        while filled > 0
                            && buffer[filled - 1] != b'\n'
                            && read_from + (filled as u64) < length
                        {
                            let before = filled;
                            filled = read(&mut buffer, before, read_from + before as u64, 64 << 10)
                                .map_err(fail)?;
                            if let Some(newline) = memchr::memchr(b'\n', &buffer[before..filled]) {
                                filled = before + newline + 1;
                                break;
                            }
                            if filled as u64 > 2 * OWN_BLOCK_BYTES + MAX_RECORD_BYTES {
                                return Err(fail(too_long(0)));
                            }
                        }
                        let owned = if index == 0 {
                            0
                        } else {
                            // The byte before the block, then the record cut by the block's start.
                            let head = filled.min(1 + usize::try_from(OWN_BLOCK_BYTES).unwrap_or(0));
                            memchr::memchr(b'\n', &buffer[..head]).map_or(filled, |newline| newline + 1)
                        };
                        let block = &buffer[owned..filled];
                        if needs_csv_reader(block) {
                            failed_block.store(0, Ordering::Relaxed);
                            return Err(Failure::Quoted);
                        }
                        match parser.feed_unquoted(block, 1) {
                            Ok(lines) => {
                                line_counts.lock().unwrap_or_else(PoisonError::into_inner)[index] = lines;
                            }
                            Err(error) => {
                                failed_block.fetch_min(index, Ordering::Relaxed);
                                return Err(Failure::Bad { block: index, error });
                            }
                        }
                    }
                    Ok(parser.into_accumulator())
                })
            })
            .collect();
        workers.into_iter().map(std::thread::ScopedJoinHandle::join).collect()
    });
    finish_workers(outcomes, &line_counts)
}

/// Sort out what the workers returned: the accumulators, `None` when a quote turned up, or the first error
/// in file order with its absolute line.
fn finish_workers(
    outcomes: Vec<std::thread::Result<Result<UsageAccumulator, Failure>>>,
    line_counts: &Mutex<Vec<u64>>,
) -> Result<Option<Vec<UsageAccumulator>>, CmsError> {
    let mut accumulators = Vec::new();
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Ok(accumulator)) => accumulators.push(accumulator),
            Ok(Err(failure)) => failures.push(failure),
            Err(_) => {
                return Err(CmsError::Store { message: "a month-end worker stopped unexpectedly".into() });
            }
        }
    }
    if failures.iter().any(|failure| matches!(failure, Failure::Quoted)) {
        return Ok(None);
    }
    let first = failures
        .into_iter()
        .filter_map(|failure| match failure {
            Failure::Bad { block, error } => Some((block, error)),
            Failure::Quoted => None,
        })
        .min_by_key(|(block, error)| (*block, error_line(error)));
    if let Some((block, mut error)) = first {
        // Every block before the failed one was parsed: its lines give the absolute line.
        let counts = line_counts.lock().unwrap_or_else(PoisonError::into_inner);
        let before: u64 = counts.iter().take(block).sum();
        if let Some(Location { position: Position::Line(line), .. }) = error.location_mut() {
            *line += 1 + before;
        }
        return Err(error);
    }
    Ok(Some(accumulators))
}

fn too_long(line: u64) -> CmsError {
    let at = if line == 0 { Location::whole("usage.csv") } else { Location::line("usage.csv", line) };
    CmsError::BadRecord { at, reason: format!("a record longer than {MAX_RECORD_BYTES} bytes") }
}

/// Where the header record ends (after its `\n`, `\r\n` or lone `\r`, as the csv crate ends records), if the
/// buffer holds it whole.
fn header_end(buffer: &[u8]) -> Option<usize> {
    let mut quotes = 0;
    for (index, byte) in buffer.iter().enumerate() {
        match byte {
            b'"' => quotes += 1,
            b'\n' if quotes % 2 == 0 => return Some(index + 1),
            b'\r' if quotes % 2 == 0 => {
                // A `\r` as the buffer's last byte may be the first half of a `\r\n`: not known yet.
                return buffer.get(index + 1).map(|&next| if next == b'\n' { index + 2 } else { index + 1 });
            }
            _ => {}
        }
    }
    None
}

/// Usage API page files on `threads` workers; each worker takes the next file in name order.
pub fn page_usage(
    files: &[PathBuf],
    period: Period,
    known: Known<'_>,
    threads: usize,
) -> Result<UsageAccumulator, CmsError> {
    let accumulators = page_workers(files, period, known, threads.max(1))?;
    if threads <= 1 {
        return Ok(single(accumulators, period));
    }
    merged(accumulators, || page_usage(files, period, known, 1))
}

fn page_workers(
    files: &[PathBuf],
    period: Period,
    known: Known<'_>,
    threads: usize,
) -> Result<Vec<UsageAccumulator>, CmsError> {
    let next = AtomicUsize::new(0);
    let failed_at = AtomicUsize::new(usize::MAX);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, failed_at) = (&next, &failed_at);
                scope.spawn(move || -> Result<UsageAccumulator, (usize, CmsError)> {
                    let mut parser = FastPageParser::new(period, known);
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= files.len() || index > failed_at.load(Ordering::Relaxed) {
                            break;
                        }
                        let fail = |error| {
                            failed_at.fetch_min(index, Ordering::Relaxed);
                            (index, error)
                        };
                        let path = &files[index];
                        let name = path.file_name().map_or_else(
                            || path.display().to_string(),
                            |name| name.to_string_lossy().into_owned(),
                        );
                        let bytes = cms_azure_stack::read_page_file(path, &name).map_err(fail)?;
                        parser.feed_page(&bytes, &name).map_err(fail)?;
                    }
                    let accumulator = parser.into_accumulator();
                    Ok(accumulator)
                })
            })
            .collect();
        let mut accumulators = Vec::new();
        let mut errors = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(Ok(accumulator)) => accumulators.push(accumulator),
                Ok(Err(failure)) => errors.push(failure),
                Err(_) => errors.push((
                    usize::MAX,
                    CmsError::Store { message: "a month-end worker stopped unexpectedly".into() },
                )),
            }
        }
        match errors.into_iter().min_by_key(|(index, _)| *index) {
            Some((_, error)) => Err(error),
            None => Ok(accumulators),
        }
    })
}

/// The `*.json` files of a folder, sorted by file name.
pub fn page_paths(folder: &Path) -> Result<Vec<PathBuf>, CmsError> {
    let entries = std::fs::read_dir(folder).map_err(|error| io_error(folder, &error))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| io_error(folder, &error))?.path();
        if path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("json")) && path.is_file()
        {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

//! [`PageFolderSource`]: exported Usage API pages in a folder (disconnected stamps).

use std::io::Read;
use std::path::{Path, PathBuf};

use cms_core::error::{CmsError, Location};
use cms_core::formats::usage_api::{MAX_PAGE_BYTES, parse_page};
use cms_core::source::{PageOrigin, SourcedPage, UsageSource};

/// Serves every `*.json` file of a folder, in file-name order, one parsed page at a time: the shape a
/// disconnected stamp exports (`page-000000.json`, `page-000001.json`, ...). Only one page is in memory at
/// a time. A page's `nextLink` is not followed: every file is read anyway.
///
/// Origins carry the file name and the configured region; they have no subscriber or window, so these
/// pages set no checkpoint.
///
/// After an error nothing moves: the next call reads the same file again.
#[derive(Debug, Clone)]
pub struct PageFolderSource {
    files: Vec<PathBuf>,
    position: usize,
    region: String,
}

impl PageFolderSource {
    /// List `folder`'s `*.json` files (extension compared ignoring case; sub-folders are not searched).
    /// Fails with `io` naming the folder when it cannot be listed.
    pub fn open(folder: impl AsRef<Path>) -> Result<Self, CmsError> {
        let folder = folder.as_ref();
        let io_error = |error: std::io::Error| CmsError::Io {
            at: Location::whole(folder.display().to_string()),
            message: error.to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(folder).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            let is_json = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
            if is_json {
                files.push(path);
            }
        }
        files.sort_by(|left, right| left.file_name().cmp(&right.file_name()));
        Ok(Self { files, position: 0, region: String::new() })
    }

    /// Name the region the pages come from (it goes into every origin).
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The files still to read, in reading order.
    pub fn remaining(&self) -> &[PathBuf] {
        self.files.get(self.position..).unwrap_or_default()
    }
}

impl UsageSource for PageFolderSource {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        let Some(path) = self.files.get(self.position) else {
            return Ok(None);
        };
        let name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned());
        let bytes = read_page_file(path, &name)?;
        let page = parse_page(&bytes, &name)?;
        self.position += 1;
        let origin = PageOrigin { region: self.region.clone(), ..PageOrigin::named(name) };
        Ok(Some(SourcedPage { origin, page }))
    }
}

/// Read a Usage API page file, refusing one larger than [`MAX_PAGE_BYTES`] before loading it: its length is
/// checked first (a 10 GB file named `*.json` costs nothing), and at most `MAX_PAGE_BYTES + 1` bytes are ever
/// read, so a file that grows meanwhile is refused too. The refusal is the one [`parse_page`] gives an
/// oversized page in memory: `bad_json` on the whole page, `name` naming it. Fails with `io` naming `path`
/// when the file cannot be read.
pub fn read_page_file(path: &Path, name: &str) -> Result<Vec<u8>, CmsError> {
    let io_error = |error: std::io::Error| CmsError::Io {
        at: Location::whole(path.display().to_string()),
        message: error.to_string(),
    };
    let too_big = |bytes: u64| CmsError::BadJson {
        at: Location::whole(name),
        message: format!("page of {bytes} bytes exceeds the limit of {MAX_PAGE_BYTES} bytes"),
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    if length > MAX_PAGE_BYTES as u64 {
        return Err(too_big(length));
    }
    // The length fits in usize: it is at most MAX_PAGE_BYTES.
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(MAX_PAGE_BYTES));
    file.take(MAX_PAGE_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() > MAX_PAGE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

//! The `UsageSource` trait: where usage comes from, one page at a time. The Azure Stack Hub Usage API client
//! (`cms-azure-stack`) implements it over HTTPS; [`PageBytesSource`] implements it over pages already in
//! memory (exported page files, tests, the demo).

use std::collections::VecDeque;

use crate::error::CmsError;
use crate::formats::usage_api::{UsagePage, parse_page};

/// A source of usage pages.
pub trait UsageSource {
    /// The next page, or `None` when the source is exhausted. A page that cannot be parsed is an error
    /// naming it; the source may be asked again (a retry) after an error.
    fn next_page(&mut self) -> Result<Option<UsagePage>, CmsError>;
}

/// Usage API pages held as bytes, served in order.
#[derive(Debug, Clone, Default)]
pub struct PageBytesSource {
    pages: VecDeque<(String, Vec<u8>)>,
}

impl PageBytesSource {
    /// A source over `(name, bytes)` pages, served in the given order.
    pub fn new(pages: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        Self {
            pages: pages.into_iter().collect(),
        }
    }
}

impl UsageSource for PageBytesSource {
    fn next_page(&mut self) -> Result<Option<UsagePage>, CmsError> {
        let Some((name, bytes)) = self.pages.front() else {
            return Ok(None);
        };
        let page = parse_page(bytes, name)?;
        self.pages.pop_front();
        Ok(Some(page))
    }
}

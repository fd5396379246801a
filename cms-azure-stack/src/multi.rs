//! [`MultiRegionSource`]: several regions, one [`UsageSource`].

use cms_core::error::{CmsError, Location};
use cms_core::source::{Checkpoint, SourcedPage, UsageSource};

use crate::client::UsageApiClient;

/// Chains the clients of several regions: every page of the first region, then of the second, and so on.
/// Each page's origin names its region, so checkpoints stay per region and subscriber.
///
/// After an error nothing moves: the next call asks the same region for the same page again.
#[derive(Debug)]
pub struct MultiRegionSource {
    clients: Vec<UsageApiClient>,
    position: usize,
}

impl MultiRegionSource {
    /// Chain `clients` in the given order. Fails with `invalid_value` when two clients share a region
    /// name: their checkpoints could not be told apart.
    pub fn new(clients: Vec<UsageApiClient>) -> Result<Self, CmsError> {
        for (index, client) in clients.iter().enumerate() {
            if clients[..index].iter().any(|earlier| earlier.region() == client.region()) {
                return Err(CmsError::InvalidValue {
                    at: Location::field("regions", "region"),
                    text: client.region().to_owned(),
                    reason: "each region may appear once".into(),
                });
            }
        }
        Ok(Self { clients, position: 0 })
    }

    /// Resume every region from `checkpoints` (see [`UsageApiClient::with_checkpoints`]).
    #[must_use]
    pub fn with_checkpoints(self, checkpoints: &[Checkpoint]) -> Self {
        Self {
            clients: self.clients.into_iter().map(|client| client.with_checkpoints(checkpoints)).collect(),
            position: self.position,
        }
    }

    /// The regions, in reading order.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.clients.iter().map(UsageApiClient::region)
    }
}

impl UsageSource for MultiRegionSource {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        while let Some(client) = self.clients.get_mut(self.position) {
            if let Some(page) = client.next_page()? {
                return Ok(Some(page));
            }
            self.position += 1;
        }
        Ok(None)
    }
}

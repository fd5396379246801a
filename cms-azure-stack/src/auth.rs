//! Bearer tokens for the admin ARM endpoint: metadata discovery, the client-credentials grant (Entra ID or
//! AD FS), and a cache that refreshes before expiry.
//!
//! Token lifetimes are measured on the monotonic clock (`std::time::Instant`) from `expires_in`; only when a
//! token reply lacks `expires_in` is `expires_on` (Unix seconds) compared with the system clock. Neither
//! clock ever decides which usage windows are asked for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms_core::error::{CmsError, Location};
use serde::Deserialize;
use url::Url;

use crate::config::ClientCredentials;
use crate::http::{Http, Request, redact_url, reply_error};

/// The api-version of the ARM metadata endpoint.
const METADATA_API_VERSION: &str = "2015-01-01";

/// Refresh this long before a token expires (at most half of its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Lifetime assumed when the identity provider does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Metadata {
    authentication: Option<MetadataAuthentication>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataAuthentication {
    login_endpoint: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    expires_on: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Seconds given as a JSON number or a string (Entra ID v1 sends `"3599"`).
fn seconds(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(number) => number.as_u64(),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Where tokens come from, as discovered from the stamp's metadata.
#[derive(Debug, Clone)]
struct TokenEndpoint {
    token_url: Url,
    audience: String,
}

#[derive(Debug, Clone)]
struct CachedToken {
    access_token: String,
    refresh_at: std::time::Instant,
}

/// Discovers the token endpoint once, then hands out cached bearer tokens.
pub(crate) struct Authenticator {
    credentials: ClientCredentials,
    metadata_url: Url,
    allow_http: bool,
    endpoint: Option<TokenEndpoint>,
    token: Option<CachedToken>,
}

impl Authenticator {
    pub fn new(credentials: ClientCredentials, arm_base: &Url, allow_http: bool) -> Result<Self, CmsError> {
        let mut metadata_url =
            arm_base.join("metadata/endpoints").map_err(|error| CmsError::InvalidValue {
                at: Location::field("region config", "arm_endpoint"),
                text: arm_base.to_string(),
                reason: error.to_string(),
            })?;
        metadata_url.query_pairs_mut().append_pair("api-version", METADATA_API_VERSION);
        Ok(Self { credentials, metadata_url, allow_http, endpoint: None, token: None })
    }

    /// A valid bearer token: the cached one, or a new one.
    pub fn bearer(&mut self, http: &mut Http) -> Result<String, CmsError> {
        if let Some(token) = &self.token
            && std::time::Instant::now() < token.refresh_at
        {
            return Ok(token.access_token.clone());
        }
        let endpoint = if let Some(endpoint) = &self.endpoint {
            endpoint.clone()
        } else {
            let endpoint = self.discover(http)?;
            self.endpoint = Some(endpoint.clone());
            endpoint
        };
        let token = self.request_token(http, &endpoint)?;
        let access_token = token.access_token.clone();
        self.token = Some(token);
        Ok(access_token)
    }

    /// Forget the cached token (the API refused it).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    /// The token endpoint, for messages.
    pub fn authority(&self) -> String {
        self.endpoint
            .as_ref()
            .map_or_else(|| redact_url(&self.metadata_url), |endpoint| redact_url(&endpoint.token_url))
    }

    fn discover(&self, http: &mut Http) -> Result<TokenEndpoint, CmsError> {
        let request = Request::Get { url: &self.metadata_url, bearer: None };
        let reply = http.send(&request)?;
        if !reply.is_success() {
            return Err(reply_error(&request, &reply));
        }
        let name = redact_url(&self.metadata_url);
        let metadata: Metadata = serde_json::from_slice(&reply.body)
            .map_err(|error| CmsError::BadJson { at: Location::whole(&name), message: error.to_string() })?;
        let lacks = |what: &str| CmsError::Auth {
            authority: name.clone(),
            message: format!("the stamp's metadata lacks authentication.{what}"),
        };
        let authentication = metadata.authentication.ok_or_else(|| lacks("loginEndpoint"))?;
        let login = authentication
            .login_endpoint
            .filter(|login| !login.trim().is_empty())
            .ok_or_else(|| lacks("loginEndpoint"))?;
        let audience = authentication
            .audiences
            .into_iter()
            .next()
            .filter(|audience| !audience.is_empty())
            .ok_or_else(|| lacks("audiences[0]"))?;
        let token_url = token_url(&login, &self.credentials.tenant, self.allow_http)
            .map_err(|message| CmsError::Auth { authority: login.clone(), message })?;
        Ok(TokenEndpoint { token_url, audience })
    }

    fn request_token(&self, http: &mut Http, endpoint: &TokenEndpoint) -> Result<CachedToken, CmsError> {
        let authority = redact_url(&endpoint.token_url);
        let secret = self.credentials.client_secret.as_str();
        // Identity providers do not echo secrets, but a message is cheap to scrub.
        let auth_error = |message: String| CmsError::Auth {
            authority: authority.clone(),
            message: if secret.is_empty() { message } else { message.replace(secret, "<redacted>") },
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", secret),
            ("resource", endpoint.audience.as_str()),
        ];
        let request = Request::PostForm { url: &endpoint.token_url, form: &form };
        let reply = http.send(&request).map_err(|error| auth_error(error.to_string()))?;
        let parsed = serde_json::from_slice::<TokenReply>(&reply.body);
        if !reply.is_success() {
            let said = match parsed {
                Ok(TokenReply { error: Some(error), error_description, .. }) => {
                    format!("{error}: {}", error_description.unwrap_or_default())
                }
                _ => String::from_utf8_lossy(&reply.body).chars().take(200).collect(),
            };
            return Err(auth_error(format!("HTTP {}: {}", reply.status, said.trim())));
        }
        let token = parsed.map_err(|error| auth_error(format!("the token reply is not JSON: {error}")))?;
        let access_token = token
            .access_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| auth_error("the token reply has no access_token".into()))?;
        let lifetime = seconds(token.expires_in.as_ref())
            .map(Duration::from_secs)
            .or_else(|| {
                let expires_on = seconds(token.expires_on.as_ref())?;
                let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
                Some(Duration::from_secs(expires_on.saturating_sub(now)))
            })
            .unwrap_or(DEFAULT_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(CachedToken {
            access_token,
            refresh_at: std::time::Instant::now() + lifetime.saturating_sub(margin),
        })
    }
}

/// The client-credentials token URL: `{login}/oauth2/token` for AD FS (a login endpoint ending in `/adfs`),
/// `{login}/{tenant}/oauth2/token` for Entra ID (v1 endpoint, which takes `resource`).
fn token_url(login: &str, tenant: &str, allow_http: bool) -> Result<Url, String> {
    let mut url = Url::parse(login.trim()).map_err(|error| format!("bad loginEndpoint: {error}"))?;
    if url.scheme() != "https" && !(allow_http && url.scheme() == "http") {
        return Err(format!("the loginEndpoint {url} is not https"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let adfs = url.path().trim_end_matches('/').to_ascii_lowercase().ends_with("/adfs");
    {
        let mut segments =
            url.path_segments_mut().map_err(|()| "the loginEndpoint has no path".to_owned())?;
        segments.pop_if_empty();
        if !adfs {
            if tenant.is_empty() {
                return Err("an Entra ID login needs the directory tenant".to_owned());
            }
            segments.push(tenant);
        }
        segments.extend(["oauth2", "token"]);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls_for_entra_and_adfs() {
        let entra =
            token_url("https://login.microsoftonline.com/", "contoso.onmicrosoft.com", false).unwrap();
        assert_eq!(entra.as_str(), "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token");
        let adfs = token_url("https://adfs.local.azurestack.external/adfs/", "adfs", false).unwrap();
        assert_eq!(adfs.as_str(), "https://adfs.local.azurestack.external/adfs/oauth2/token");
        let adfs = token_url("https://adfs.local.azurestack.external/ADFS", "", false).unwrap();
        assert_eq!(adfs.as_str(), "https://adfs.local.azurestack.external/ADFS/oauth2/token");
        assert!(token_url("http://login/", "t", false).is_err());
        assert!(token_url("http://login/", "t", true).is_ok());
        assert!(token_url("https://login/", "", false).is_err());
        // A tenant is one path segment, whatever it holds.
        let odd = token_url("https://login/", "a/b", false).unwrap();
        assert_eq!(odd.as_str(), "https://login/a%2Fb/oauth2/token");
    }

    #[test]
    fn seconds_as_numbers_or_strings() {
        assert_eq!(seconds(Some(&serde_json::json!(3599))), Some(3599));
        assert_eq!(seconds(Some(&serde_json::json!("3599"))), Some(3599));
        assert_eq!(seconds(Some(&serde_json::json!(null))), None);
        assert_eq!(seconds(None), None);
    }
}

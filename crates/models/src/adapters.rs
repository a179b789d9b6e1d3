//! The adapters a process uses, built once from configuration: a live one
//! for each provider with a key, the simulated one for every other model.

use domain::{Model, ModelMode, Provider};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::ModelAdapter;
use crate::anthropic::Anthropic;
use crate::config::AdapterConfig;
use crate::http;
use crate::openai::OpenAi;
use crate::simulated::Simulated;

/// Why [`Adapters::new`] refused a configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A base URL does not parse, or is not `http` or `https`.
    #[error("the {provider} base URL {url:?} is not an absolute http(s) URL")]
    InvalidBaseUrl {
        /// Whose URL it is.
        provider: Provider,
        /// The URL as configured (base URLs are not secret).
        url: String,
    },
    /// A key holds characters an HTTP header cannot carry.
    #[error("the {0} API key holds characters an HTTP header cannot carry")]
    InvalidApiKey(Provider),
    /// A live provider needs TLS, and no rustls crypto provider is installed.
    #[error("no rustls crypto provider is installed; install one before building the adapters")]
    NoCryptoProvider,
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// Every model's adapter. Cheap to share behind an `Arc`; the live adapters
/// share one connection pool.
#[derive(Debug)]
pub struct Adapters {
    openai: Option<OpenAi>,
    anthropic: Option<Anthropic>,
    simulated: Simulated,
}

impl Adapters {
    /// Builds the adapters. The HTTP client is built only when some provider
    /// has a key, so a keyless process needs no TLS set-up at all.
    pub fn new(mut config: AdapterConfig) -> Result<Self, BuildError> {
        check_base_url(Provider::Openai, &config.openai.base_url)?;
        check_base_url(Provider::Anthropic, &config.anthropic.base_url)?;
        let openai_key = usable(config.openai.api_key.take());
        let anthropic_key = usable(config.anthropic.api_key.take());

        let needs_client = openai_key.is_some() || anthropic_key.is_some();
        let client = needs_client.then(http::client).transpose()?;

        let openai = openai_key
            .zip(client.as_ref())
            .map(|(key, client)| OpenAi::new(client, key, &config))
            .transpose()?;
        let anthropic = anthropic_key
            .zip(client.as_ref())
            .map(|(key, client)| Anthropic::new(client, key, &config))
            .transpose()?;
        let simulated = Simulated::new(config.simulated_latency);
        Ok(Self {
            openai,
            anthropic,
            simulated,
        })
    }

    /// The adapter that runs `model`: its provider's, or the simulated one
    /// when that provider has no key.
    pub fn for_model(&self, model: Model) -> &dyn ModelAdapter {
        match (model.provider(), &self.openai, &self.anthropic) {
            (Provider::Openai, Some(openai), _) => openai,
            (Provider::Anthropic, _, Some(anthropic)) => anthropic,
            _ => &self.simulated,
        }
    }

    /// Whether `model` runs live or simulated, as `GET /models` shows it.
    pub fn mode(&self, model: Model) -> ModelMode {
        match self.for_model(model).provider() {
            Provider::Simulated => ModelMode::Simulated,
            Provider::Openai | Provider::Anthropic => ModelMode::Live,
        }
    }
}

/// A key that is set but blank (`OPENAI_API_KEY=`) counts as no key: it
/// could only earn 401s.
fn usable(key: Option<SecretString>) -> Option<SecretString> {
    key.filter(|key| !key.expose_secret().trim().is_empty())
}

fn check_base_url(provider: Provider, url: &str) -> Result<(), BuildError> {
    let parsed = Url::parse(url).ok();
    if parsed.is_some_and(|parsed| matches!(parsed.scheme(), "http" | "https")) {
        return Ok(());
    }
    Err(BuildError::InvalidBaseUrl {
        provider,
        url: url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::ProviderSettings;

    use super::*;

    fn install_crypto() {
        // Another test may have installed it first; either way one is there.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn with_keys(openai: Option<&str>, anthropic: Option<&str>) -> AdapterConfig {
        let mut config = AdapterConfig::default();
        config.openai.api_key = openai.map(SecretString::from);
        config.anthropic.api_key = anthropic.map(SecretString::from);
        config
    }

    #[test]
    fn models_without_keys_run_simulated() {
        let adapters = Adapters::new(AdapterConfig::default()).unwrap();

        for model in Model::ALL {
            assert_eq!(adapters.mode(model), ModelMode::Simulated);
            assert_eq!(adapters.for_model(model).provider(), Provider::Simulated);
        }
    }

    #[test]
    fn a_key_makes_only_its_providers_models_live() {
        install_crypto();

        let adapters = Adapters::new(with_keys(None, Some("sk-ant-test"))).unwrap();

        assert_eq!(adapters.mode(Model::Claude3Opus), ModelMode::Live);
        assert_eq!(
            adapters.for_model(Model::Claude3Opus).provider(),
            Provider::Anthropic
        );
        assert_eq!(adapters.mode(Model::Gpt4o), ModelMode::Simulated);
    }

    #[test]
    fn a_blank_key_counts_as_none() {
        let adapters = Adapters::new(with_keys(Some("  "), None)).unwrap();

        assert_eq!(adapters.mode(Model::Gpt4o), ModelMode::Simulated);
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        let config = AdapterConfig {
            openai: ProviderSettings::keyless("api.openai.com/v1"),
            ..AdapterConfig::default()
        };

        let error = Adapters::new(config).unwrap_err();

        assert!(matches!(
            error,
            BuildError::InvalidBaseUrl {
                provider: Provider::Openai,
                ..
            }
        ));
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused() {
        install_crypto();

        let error = Adapters::new(with_keys(Some("sk-bad\nkey"), None)).unwrap_err();

        assert!(
            matches!(error, BuildError::InvalidApiKey(Provider::Openai)),
            "{error:?}"
        );
    }

    #[test]
    fn debug_output_never_shows_keys() {
        install_crypto();
        let config = with_keys(Some("sk-open-secret"), Some("sk-ant-secret"));
        let shown_config = format!("{config:?}");

        let adapters = Adapters::new(config).unwrap();

        let shown_adapters = format!("{adapters:?}");
        for shown in [shown_config, shown_adapters] {
            assert!(!shown.contains("secret"), "{shown}");
        }
    }
}

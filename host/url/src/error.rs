//! [`UrlError`]: why a URL, prefix or host was refused. Every message says what was wrong and
//! what to do instead; none echoes the whole input (it may be 8 KiB of attacker-chosen bytes).

use thiserror::Error;

/// Why [`normalize`](crate::normalize), [`normalize_prefix`](crate::normalize_prefix) or
/// [`normalize_host`](crate::normalize_host) refused its input.
///
/// Byte offsets (`at`) count from the start of the input as given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The input is longer than the configured limit.
    #[error("URL is {len} bytes, over the limit of {max}: shorten it or raise the limit (`Normalizer::with_max_len`)")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The input fits the limit but its normalised form (non-ASCII characters become `%XX`
    /// escapes) does not.
    #[error("URL is {len} bytes once normalised (non-ASCII characters become %XX escapes), over the limit of {max}: shorten it or raise the limit")]
    NormalizedTooLong {
        /// Length of the normalised form in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The bytes are not UTF-8.
    #[error(
        "URL is not valid UTF-8 (first bad byte at offset {at}): percent-encode non-ASCII text as UTF-8 %XX escapes"
    )]
    InvalidUtf8 {
        /// Offset of the first byte that is not UTF-8.
        at: usize,
    },
    /// A control character or whitespace (ASCII or Unicode) appears anywhere in the input.
    #[error("URL contains control character or whitespace {ch:?} at byte {at}: remove it or percent-encode it (a space is %20)")]
    ControlOrWhitespace {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// A `%` is not followed by two hexadecimal digits.
    #[error(
        "invalid percent-encoding at byte {at}: `%` must be followed by two hex digits; write a literal `%` as %25"
    )]
    InvalidPercentEncoding {
        /// Offset of the `%`.
        at: usize,
    },
    /// The input does not start with `scheme://`.
    #[error("URL is not absolute: it must start with `http://` or `https://` followed by a host")]
    NotAbsolute,
    /// The scheme is neither `http` nor `https`.
    #[error("unsupported scheme `{scheme}`: only `http` and `https` URLs can be purged or cached")]
    UnsupportedScheme {
        /// The scheme as given (at most 32 characters).
        scheme: String,
    },
    /// Nothing between `//` and the port, path, query or fragment.
    #[error("URL has an empty host: write the host after `//`, as in `https://example.com/`")]
    EmptyHost,
    /// The authority has a `user[:password]@` part.
    #[error("URL contains userinfo (`user:password@`): remove it; credentials never belong in a purge or a cache key")]
    UserInfo,
    /// The host is not a valid domain name, IPv4 or IPv6 address.
    #[error("invalid host ({reason}): use a domain name, an IPv4 address or a bracketed IPv6 address")]
    InvalidHost {
        /// What the URL parser objected to.
        reason: String,
    },
    /// The port is not a number from 0 to 65535.
    #[error("invalid port: after `:` write a number from 0 to 65535, or leave the port out")]
    InvalidPort,
    /// A prefix ends before the host is complete, so it could match other hosts.
    #[error("prefix ends inside the host: end it with `/` (e.g. `https://example.com/`) so it cannot match other hosts, or use a host purge")]
    PrefixEndsInAuthority,
    /// A host purge target is more than a host.
    #[error("`{found}` is not allowed in a host: give a bare host such as `example.com`, without scheme, port, path or userinfo")]
    NotAHost {
        /// The first character that cannot be part of a bare host.
        found: char,
    },
    /// Anything else the URL parser refused.
    #[error("URL could not be parsed ({reason}): give an absolute `http://` or `https://` URL")]
    Invalid {
        /// What the URL parser objected to.
        reason: String,
    },
}

impl UrlError {
    /// Maps a parse error of the `url` crate.
    pub(crate) fn from_parse(e: url::ParseError) -> UrlError {
        use url::ParseError as P;
        match e {
            P::EmptyHost => UrlError::EmptyHost,
            P::InvalidPort => UrlError::InvalidPort,
            P::IdnaError | P::InvalidDomainCharacter | P::InvalidIpv4Address | P::InvalidIpv6Address => {
                UrlError::InvalidHost { reason: e.to_string() }
            }
            P::RelativeUrlWithoutBase => UrlError::NotAbsolute,
            other => UrlError::Invalid { reason: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_what_to_do() {
        let e = UrlError::InvalidPercentEncoding { at: 7 };
        assert_eq!(
            e.to_string(),
            "invalid percent-encoding at byte 7: `%` must be followed by two hex digits; write a literal `%` as %25"
        );
        let e = UrlError::ControlOrWhitespace { ch: ' ', at: 3 };
        assert!(e.to_string().contains("' ' at byte 3"));
        assert!(UrlError::UserInfo.to_string().contains("remove it"));
    }

    #[test]
    fn parse_errors_map_to_variants() {
        assert_eq!(UrlError::from_parse(url::ParseError::EmptyHost), UrlError::EmptyHost);
        assert_eq!(UrlError::from_parse(url::ParseError::InvalidPort), UrlError::InvalidPort);
        assert!(matches!(UrlError::from_parse(url::ParseError::IdnaError), UrlError::InvalidHost { .. }));
        assert_eq!(UrlError::from_parse(url::ParseError::RelativeUrlWithoutBase), UrlError::NotAbsolute);
    }
}

/// A refused [`crate::normalize_owned`]: why, and the input given back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct Refused {
    /// Why the input is not a URL this crate accepts.
    pub error: UrlError,
    /// The input, unchanged.
    pub input: String,
}

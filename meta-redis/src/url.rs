//! Volume URLs: `redis://[user:password@]host:port/db`, `rediss://` for TLS, and
//! `unix:///path/to/socket?db=N` (what `juicefs` accepts for a local socket).

use meta_api::{MetaError, Result};
use redis::{ConnectionInfo, IntoConnectionInfo};

/// Parses a volume URL, taking a missing password from `META_PASSWORD` or
/// `REDIS_PASSWORD` as JuiceFS does.
pub(crate) fn parse(url: &str) -> Result<ConnectionInfo> {
    if url.starts_with("rediss://") && !cfg!(feature = "tls") {
        return Err(MetaError::NotSupported(
            "rediss:// needs meta-redis built with its `tls` feature",
        ));
    }
    let mut info = url.into_connection_info().map_err(|e| {
        MetaError::backend(false, format!("invalid redis URL {}: {e}", redact(url)))
    })?;
    if info.redis.password.is_none() {
        info.redis.password = ["META_PASSWORD", "REDIS_PASSWORD"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()));
    }
    Ok(info)
}

/// The URL with any password replaced, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(x) => x,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_db_and_auth() {
        let i = parse("redis://u:p%40ss@127.0.0.1:6380/3").unwrap();
        assert_eq!(i.redis.db, 3);
        assert_eq!(i.redis.username.as_deref(), Some("u"));
        assert_eq!(i.redis.password.as_deref(), Some("p@ss"));
        assert!(parse("http://x").is_err());
        assert_eq!(redact("redis://u:secret@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://h:1/2"), "redis://h:1/2");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn rediss_without_tls_is_refused_clearly() {
        assert!(matches!(
            parse("rediss://h:1/0"),
            Err(MetaError::NotSupported(_))
        ));
    }
}

//! Volume URLs: `tkv-mem://NAME[?prefix=P]` and `fdb://[CLUSTER-FILE][?prefix=P]`.

use meta_api::{MetaError, Result};

/// A parsed volume URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VolumeUrl {
    /// The scheme (`tkv-mem`, `fdb`).
    pub scheme: String,
    /// Everything between `://` and `?`: the store name of `tkv-mem`, the (optional)
    /// host and the cluster-file path of `fdb`.
    pub addr: String,
    /// The `prefix` query parameter, percent-decoded.
    pub prefix: Option<Vec<u8>>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex);
                let lo = b.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(MetaError::InvalidArgument("bad %-escape in URL")),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

impl VolumeUrl {
    /// Parses `scheme://addr[?query]`; only the `prefix` query parameter is used, others
    /// are ignored (as JuiceFS ignores what a driver does not read).
    pub fn parse(url: &str) -> Result<VolumeUrl> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(MetaError::InvalidArgument("a volume URL needs scheme://"))?;
        let (addr, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let mut prefix = None;
        for pair in query.unwrap_or_default().split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if k == "prefix" {
                    prefix = Some(percent_decode(v)?);
                }
            }
        }
        Ok(VolumeUrl {
            scheme: scheme.to_ascii_lowercase(),
            addr: String::from_utf8(percent_decode(addr)?)
                .map_err(|_| MetaError::InvalidArgument("URL address is not UTF-8"))?,
            prefix,
        })
    }

    /// The cluster file of an `fdb://` URL: the path part (`fdb:///etc/fdb.cluster` or
    /// `fdb://host/etc/fdb.cluster`, the host being ignored as JuiceFS does), or `None`
    /// for the client library's default.
    pub fn cluster_file(&self) -> Option<String> {
        let path = match self.addr.find('/') {
            Some(i) => &self.addr[i..],
            None => "",
        };
        (!path.is_empty()).then(|| path.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdb_urls() {
        let u = VolumeUrl::parse("fdb:///etc/foundationdb/fdb.cluster?prefix=vol").unwrap();
        assert_eq!(u.scheme, "fdb");
        assert_eq!(
            u.cluster_file().as_deref(),
            Some("/etc/foundationdb/fdb.cluster")
        );
        assert_eq!(u.prefix.as_deref(), Some(&b"vol"[..]));
        let u = VolumeUrl::parse("fdb://?prefix=a%2Fb&x=1").unwrap();
        assert_eq!(u.cluster_file(), None);
        assert_eq!(u.prefix.as_deref(), Some(&b"a/b"[..]));
        let u = VolumeUrl::parse("fdb://host/x.cluster").unwrap();
        assert_eq!(u.cluster_file().as_deref(), Some("/x.cluster"));
        assert_eq!(u.prefix, None);
    }

    #[test]
    fn mem_urls_and_errors() {
        let u = VolumeUrl::parse("tkv-mem://shared-1").unwrap();
        assert_eq!(u.scheme, "tkv-mem");
        assert_eq!(u.addr, "shared-1");
        assert!(matches!(
            VolumeUrl::parse("nourl"),
            Err(MetaError::InvalidArgument(_))
        ));
        assert!(matches!(
            VolumeUrl::parse("fdb://?prefix=%zz"),
            Err(MetaError::InvalidArgument(_))
        ));
    }
}

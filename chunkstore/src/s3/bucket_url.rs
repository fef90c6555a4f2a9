//! Parsing of JuiceFS's S3 `--bucket` URLs (`juicefs format --storage s3 --bucket URL`), the
//! form a volume's settings record its storage in.
//!
//! The accepted forms are listed on [`S3Options::from_bucket_url`](crate::S3Options::from_bucket_url).

use std::net::{IpAddr, Ipv6Addr};

use crate::{Result, StoreError};

/// Where a bucket URL points, before the environment fills in what it leaves open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketUrl {
    /// The bucket name.
    pub bucket: String,
    /// The endpoint (`scheme://host[:port]`); `None` means AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    /// The region the URL names, if any.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) rather than virtual-host.
    pub path_style: bool,
    /// `?disable-checksum=true` was given.
    pub disable_checksum: bool,
}

const AWS_DEFAULT_REGION: &str = "us-east-1";

fn invalid(url: &str, why: &str) -> StoreError {
    StoreError::Invalid(format!("bucket URL {url:?}: {why}"))
}

/// Parses a bucket URL. `vhost_style` is whether the user asked for virtual-host addressing of
/// non-AWS endpoints (JuiceFS's `JFS_S3_VHOST_STYLE`); it is a parameter so that parsing reads
/// no environment.
pub(crate) fn parse_bucket_url(raw: &str, vhost_style: bool) -> Result<BucketUrl> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid(raw, "empty"));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => {
            let host = trimmed.split(['/', '?']).next().unwrap_or("");
            let lc = host.to_ascii_lowercase();
            let scheme = if lc.contains('.') && !strip_port(&lc).ends_with(".amazonaws.com") {
                "http"
            } else {
                "https"
            };
            (scheme.to_string(), trimmed)
        }
    };
    let https = match scheme.as_str() {
        "http" => false,
        "https" | "s3" => true,
        other => return Err(invalid(raw, &format!("unsupported scheme {other:?}"))),
    };
    let scheme = if https { "https" } else { "http" };

    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let disable_checksum = query.split('&').any(|kv| {
        kv.split_once('=').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("disable-checksum") && v.eq_ignore_ascii_case("true")
        })
    });
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err(invalid(raw, "no host"));
    }
    if host.contains('@') {
        return Err(invalid(
            raw,
            "credentials in the URL are not supported; pass them apart",
        ));
    }
    let lc_host = host.to_ascii_lowercase();
    let bare_host = strip_port(&lc_host);
    let aws = bare_host.contains(".amazonaws.com");
    let addressable_by_path_only = is_ip_or_localhost(bare_host);
    let compat_path_style = addressable_by_path_only || !vhost_style;

    let parsed = if !path.is_empty() {
        // [ENDPOINT]/[BUCKET][/ignored…]
        let bucket = path.split('/').next().unwrap_or("").to_string();
        if aws {
            BucketUrl {
                bucket,
                endpoint: None,
                region: Some(region_of_aws_endpoint(bare_host)),
                path_style: false,
                disable_checksum,
            }
        } else {
            BucketUrl {
                bucket,
                endpoint: Some(format!("{scheme}://{host}")),
                region: None,
                path_style: compat_path_style,
                disable_checksum,
            }
        }
    } else if addressable_by_path_only {
        return Err(invalid(
            raw,
            "an IP or localhost endpoint needs the bucket in the path (http://HOST:PORT/BUCKET)",
        ));
    } else {
        match host.split_once('.') {
            // A bare name is an AWS bucket.
            None => BucketUrl {
                bucket: host.to_string(),
                endpoint: None,
                region: None,
                path_style: false,
                disable_checksum,
            },
            Some((first, after)) if aws => {
                if let Some(head) = bare_host.strip_suffix(".vpce.amazonaws.com") {
                    // [BUCKET].[VPC ENDPOINT].[REGION].vpce.amazonaws.com
                    let region = head.rsplit('.').next().unwrap_or("").to_string();
                    BucketUrl {
                        bucket: first.to_string(),
                        endpoint: Some(format!("{scheme}://{after}")),
                        region: Some(region),
                        path_style: compat_path_style,
                        disable_checksum,
                    }
                } else {
                    // [BUCKET].s3[.-][REGION].amazonaws.com[.cn]
                    let Some(at) = lc_host.find(".s3") else {
                        return Err(invalid(raw, "an amazonaws.com host without \".s3\""));
                    };
                    BucketUrl {
                        bucket: host[..at].to_string(),
                        endpoint: None,
                        region: Some(region_of_aws_endpoint(&bare_host[at + 1..])),
                        path_style: false,
                        disable_checksum,
                    }
                }
            }
            // [BUCKET].[ENDPOINT] of an S3-compatible service.
            Some((first, after)) => BucketUrl {
                bucket: first.to_string(),
                endpoint: Some(format!("{scheme}://{after}")),
                region: region_of_compatible_endpoint(strip_port(&after.to_ascii_lowercase())),
                path_style: compat_path_style,
                disable_checksum,
            },
        }
    };
    validate_bucket_name(&parsed.bucket).map_err(|why| invalid(raw, &why))?;
    Ok(parsed)
}

/// The region to use when the URL names none: `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`.
pub(crate) fn region_from_env() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|r| !r.trim().is_empty())
        .unwrap_or_else(|| AWS_DEFAULT_REGION.to_string())
}

/// Whether `JFS_S3_VHOST_STYLE` asks for virtual-host addressing (any value but "", 0, false).
pub(crate) fn vhost_style_from_env() -> bool {
    match std::env::var("JFS_S3_VHOST_STYLE") {
        Ok(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
        Err(_) => false,
    }
}

/// Bucket names as S3-compatible services accept them (lenient: legacy names may hold
/// capitals and underscores).
fn validate_bucket_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("no bucket name".into());
    }
    if name.len() > 255 {
        return Err("bucket name longer than 255 bytes".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("bucket name {name:?} holds {c:?}"));
    }
    Ok(())
}

/// `host[:port]` → `host`; an IPv6 literal keeps its brackets.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_ip_or_localhost(bare_host: &str) -> bool {
    if bare_host == "localhost" {
        return true;
    }
    if let Some(inner) = bare_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
    {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    bare_host.parse::<IpAddr>().is_ok()
}

/// The region in an AWS endpoint: `s3.us-west-2.amazonaws.com`, `s3-us-west-2.amazonaws.com`,
/// `s3.dualstack.eu-west-1.amazonaws.com`; `s3.amazonaws.com` and `s3-external-1` are
/// `us-east-1`.
fn region_of_aws_endpoint(endpoint: &str) -> String {
    let mut e = endpoint;
    if let Some(r) = e.strip_prefix("s3-").or_else(|| e.strip_prefix("s3.")) {
        e = r;
    }
    if let Some(r) = e.strip_prefix("dualstack.") {
        e = r;
    }
    if e == "amazonaws.com" {
        return AWS_DEFAULT_REGION.to_string();
    }
    match e.split('.').next().unwrap_or("") {
        "" | "external-1" => AWS_DEFAULT_REGION.to_string(),
        region => region.to_string(),
    }
}

/// Regions JuiceFS reads from compatible endpoints: Oracle Cloud
/// (`NS.compat.objectstorage.REGION.oraclecloud.com`) and OVH (`s3.REGION[.x].cloud.ovh.net`).
fn region_of_compatible_endpoint(endpoint: &str) -> Option<String> {
    if let Some(head) = endpoint.strip_suffix(".oraclecloud.com") {
        if let Some(at) = head.find(".compat.objectstorage.") {
            let region = &head[at + ".compat.objectstorage.".len()..];
            if !region.is_empty() {
                return Some(region.to_string());
            }
        }
    }
    if let Some(mid) = endpoint
        .strip_prefix("s3.")
        .and_then(|e| e.strip_suffix(".cloud.ovh.net"))
    {
        let region = mid.split('.').next().unwrap_or("");
        if !region.is_empty() {
            return Some(region.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(url: &str) -> BucketUrl {
        parse_bucket_url(url, false).unwrap()
    }

    fn compat(bucket: &str, endpoint: &str, path_style: bool) -> BucketUrl {
        BucketUrl {
            bucket: bucket.into(),
            endpoint: Some(endpoint.into()),
            region: None,
            path_style,
            disable_checksum: false,
        }
    }

    fn aws(bucket: &str, region: Option<&str>) -> BucketUrl {
        BucketUrl {
            bucket: bucket.into(),
            endpoint: None,
            region: region.map(String::from),
            path_style: false,
            disable_checksum: false,
        }
    }

    #[test]
    fn path_form_on_ip_and_port() {
        let want = compat("tessera", "http://127.0.0.1:9000", true);
        assert_eq!(p("http://127.0.0.1:9000/tessera"), want);
        assert_eq!(p("http://127.0.0.1:9000/tessera/"), want);
        assert_eq!(
            p("127.0.0.1:9000/tessera"),
            want,
            "no scheme + dotted host is http"
        );
        assert_eq!(p("http://127.0.0.1:9000/tessera/ignored/part"), want);
        assert_eq!(
            p("http://localhost:8333/b"),
            compat("b", "http://localhost:8333", true)
        );
        assert_eq!(
            p("http://[::1]:8333/b"),
            compat("b", "http://[::1]:8333", true)
        );
        assert_eq!(
            p("HTTP://127.0.0.1/b"),
            compat("b", "http://127.0.0.1", true)
        );
    }

    #[test]
    fn ip_hosts_stay_path_style_even_when_vhost_is_asked() {
        let got = parse_bucket_url("http://10.0.0.1:9000/b", true).unwrap();
        assert!(got.path_style);
        let got = parse_bucket_url("https://minio.example.com/b", true).unwrap();
        assert!(
            !got.path_style,
            "a DNS host may use virtual-host addressing"
        );
        let got = parse_bucket_url("https://b.minio.example.com", true).unwrap();
        assert_eq!((got.bucket.as_str(), got.path_style), ("b", false));
    }

    #[test]
    fn compatible_endpoints() {
        assert_eq!(
            p("https://minio.example.com/mybucket"),
            compat("mybucket", "https://minio.example.com", true)
        );
        assert_eq!(
            p("https://mybucket.minio.example.com:9000"),
            compat("mybucket", "https://minio.example.com:9000", true)
        );
        let oracle = p("https://b.ns.compat.objectstorage.us-ashburn-1.oraclecloud.com");
        assert_eq!(oracle.region.as_deref(), Some("us-ashburn-1"));
        let ovh = p("https://b.s3.gra.perf.cloud.ovh.net");
        assert_eq!(ovh.region.as_deref(), Some("gra"));
        assert_eq!(
            ovh.endpoint.as_deref(),
            Some("https://s3.gra.perf.cloud.ovh.net")
        );
    }

    #[test]
    fn aws_forms() {
        assert_eq!(
            p("https://mybucket.s3.us-west-2.amazonaws.com"),
            aws("mybucket", Some("us-west-2"))
        );
        assert_eq!(
            p("https://mybucket.s3-eu-west-1.amazonaws.com"),
            aws("mybucket", Some("eu-west-1"))
        );
        assert_eq!(
            p("https://mybucket.s3.amazonaws.com"),
            aws("mybucket", Some("us-east-1"))
        );
        assert_eq!(
            p("https://mybucket.s3.cn-north-1.amazonaws.com.cn"),
            aws("mybucket", Some("cn-north-1"))
        );
        assert_eq!(
            p("https://s3.ap-south-1.amazonaws.com/mybucket"),
            aws("mybucket", Some("ap-south-1"))
        );
        assert_eq!(
            p("https://s3.dualstack.eu-central-1.amazonaws.com/mybucket"),
            aws("mybucket", Some("eu-central-1"))
        );
        assert_eq!(
            p("https://s3-external-1.amazonaws.com/mybucket"),
            aws("mybucket", Some("us-east-1"))
        );
        assert_eq!(
            p("mybucket.s3.us-west-2.amazonaws.com"),
            aws("mybucket", Some("us-west-2")),
            "no scheme on AWS is https"
        );
        assert_eq!(p("mybucket"), aws("mybucket", None));
        assert_eq!(p("s3://mybucket"), aws("mybucket", None));
        let vpce = p("https://mybucket.bucket.vpce-0a1b-2c3d.s3.us-east-2.vpce.amazonaws.com");
        assert_eq!(vpce.bucket, "mybucket");
        assert_eq!(vpce.region.as_deref(), Some("us-east-2"));
        assert_eq!(
            vpce.endpoint.as_deref(),
            Some("https://bucket.vpce-0a1b-2c3d.s3.us-east-2.vpce.amazonaws.com")
        );
    }

    #[test]
    fn query_disables_checksum() {
        assert!(p("http://127.0.0.1:9000/b?disable-checksum=true").disable_checksum);
        assert!(p("http://127.0.0.1:9000/b?x=1&disable-checksum=TRUE").disable_checksum);
        assert!(!p("http://127.0.0.1:9000/b?disable-checksum=false").disable_checksum);
    }

    #[test]
    fn bad_urls_are_invalid() {
        for url in [
            "",
            "   ",
            "ftp://host/b",
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http:///b",
            "http://user:pw@host.example.com/b",
            "http://host.example.com/bad%20name",
            "https://example.amazonaws.com",
        ] {
            assert!(
                matches!(parse_bucket_url(url, false), Err(StoreError::Invalid(_))),
                "{url:?} should be Invalid"
            );
        }
    }

    #[test]
    fn port_stripping() {
        assert_eq!(strip_port("h.example.com:9000"), "h.example.com");
        assert_eq!(strip_port("h.example.com"), "h.example.com");
        assert_eq!(strip_port("[::1]:9000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert!(is_ip_or_localhost("[::1]") && is_ip_or_localhost("10.1.2.3"));
        assert!(!is_ip_or_localhost("example.com"));
    }
}

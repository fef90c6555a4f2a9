//! Formatting and loading volume settings.

use super::{assert_err, Fixture};
use crate::{Format, MetaError, Result, SessionInfo};

fn fresh_format() -> Format {
    Format::new(
        "testkit",
        "9b0f7c7e-0000-4000-8000-000000000001",
        "file",
        "/tmp/testkit-bucket/",
    )
}

pub(super) async fn unformatted_volume_does_not_load(fx: &Fixture<'_>) -> Result<()> {
    let e = fx.h.unformatted_client().await?;
    assert_err!(e.load().await, MetaError::NotFormatted);
    Ok(())
}

pub(super) async fn init_twice_without_force_is_exists(fx: &Fixture<'_>) -> Result<()> {
    let e = fx.h.unformatted_client().await?;
    let f = fresh_format();
    e.init(&f, false).await?;
    assert_eq!(e.load().await?, f);
    assert_err!(e.init(&f, false).await, MetaError::Exists);
    // The formatted volume of the fixture refuses a second format too.
    let existing = fx.a.load().await?;
    assert_err!(fx.a.init(&existing, false).await, MetaError::Exists);
    Ok(())
}

pub(super) async fn init_force_rewrites_settings(fx: &Fixture<'_>) -> Result<()> {
    let mut f = fx.a.load().await?;
    f.trash_days = 3;
    f.capacity = 1 << 40;
    f.compression = "zstd".to_string();
    fx.a.init(&f, true).await?;
    assert_eq!(fx.a.load().await?, f);
    let b = fx.client().await?;
    assert_eq!(
        b.load().await?,
        f,
        "another client reads the rewritten settings"
    );
    Ok(())
}

pub(super) async fn settings_keep_unknown_fields(fx: &Fixture<'_>) -> Result<()> {
    let e = fx.h.unformatted_client().await?;
    let json = serde_json::json!({
        "Name": "testkit", "UUID": "9b0f7c7e-0000-4000-8000-000000000002", "Storage": "file",
        "Bucket": "/tmp/testkit-bucket/", "BlockSize": 4096, "Compression": "lz4",
        "TrashDays": 0, "MetaVersion": 1, "EnableACL": false,
        "UploadLimit": 7, "FutureField": {"nested": [1, 2, 3]}
    });
    let f = Format::from_json(&json.to_string())?;
    assert!(f.extra.contains_key("FutureField"));
    e.init(&f, false).await?;
    let back = e.load().await?;
    assert_eq!(back, f);
    assert_eq!(back.extra.get("UploadLimit"), Some(&serde_json::json!(7)));
    assert_eq!(
        back.extra.get("FutureField"),
        Some(&serde_json::json!({"nested": [1, 2, 3]}))
    );
    Ok(())
}

pub(super) async fn formatted_volume_loads(fx: &Fixture<'_>) -> Result<()> {
    let f = fx.a.load().await?;
    assert!(!f.name.is_empty(), "a formatted volume has a name");
    assert!(!f.uuid.is_empty(), "a formatted volume has a UUID");
    f.check_supported()?;
    Ok(())
}

pub(super) async fn new_session_on_fresh_volume(fx: &Fixture<'_>) -> Result<()> {
    let e = fx.h.unformatted_client().await?;
    e.init(&fresh_format(), false).await?;
    let info = SessionInfo {
        version: "testkit".into(),
        host_name: "host".into(),
        mount_point: "/mnt/x".into(),
        process_id: 42,
    };
    let sid = e.new_session(&info).await?;
    let sessions = e.list_sessions().await?;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].sid, sid);
    assert_eq!(sessions[0].info, info);
    e.close_session().await?;
    assert!(e.list_sessions().await?.is_empty());
    Ok(())
}

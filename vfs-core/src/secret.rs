//! The object-store secrets of a volume's settings, which JuiceFS stores encrypted.

use base64::Engine as _;
use md5::{Digest, Md5};
use meta_api::Format;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Result, VfsError};

/// The volume's secret key and session token in plain text.
///
/// `juicefs format` (1.1 and later) stores both encrypted and sets `KeyEncrypted`: each is
/// the base64 of a 12-byte nonce followed by the AES-GCM sealed bytes and tag, under the
/// MD5 of the volume's UUID as an AES-128 key. Volumes whose `EncryptAlgo` asks for SM4
/// are refused; settings without `KeyEncrypted` hold the secrets as they are.
pub(crate) fn plain_secrets(format: &Format) -> Result<(String, String)> {
    let encrypted = format
        .extra
        .get("KeyEncrypted")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !encrypted {
        return Ok((format.secret_key.clone(), format.session_token.clone()));
    }
    if format.encrypt_algo.to_ascii_lowercase().starts_with("sm4") {
        return Err(VfsError::UnsupportedStorage(
            "the volume's secret key is SM4-encrypted, which this client cannot decrypt".into(),
        ));
    }
    let digest: [u8; 16] = Md5::digest(format.uuid.as_bytes()).into();
    let key = UnboundKey::new(&AES_128_GCM, &digest)
        .map(LessSafeKey::new)
        .map_err(|_| VfsError::UnsupportedStorage("cannot set up AES-GCM".into()))?;
    let open = |what: &str, sealed: &str| -> Result<String> {
        if sealed.is_empty() {
            return Ok(String::new());
        }
        if sealed == meta_api::REMOVED_SECRET {
            return Err(VfsError::UnsupportedStorage(format!(
                "the volume's {what} was removed from its settings; set it again with \
                 `juicefs config`"
            )));
        }
        let bad = || {
            VfsError::UnsupportedStorage(format!(
                "the volume's encrypted {what} cannot be decrypted with its UUID"
            ))
        };
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| bad())?;
        if buf.len() < NONCE_LEN {
            return Err(bad());
        }
        let mut body = buf.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&buf).map_err(|_| bad())?;
        let plain = key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    };
    Ok((
        open("secret key", &format.secret_key)?,
        open("session token", &format.session_token)?,
    ))
}

/// Encrypts the secret key and session token of new settings as `juicefs format` does
/// (see [`plain_secrets`]), so that they are not stored in plain text and every JuiceFS
/// client reads them. Settings already marked `KeyEncrypted`, or without secrets, are left
/// alone.
pub(crate) fn seal_secrets(format: &mut Format) -> Result<()> {
    let encrypted = format.extra.get("KeyEncrypted").and_then(|v| v.as_bool());
    if encrypted == Some(true) || (format.secret_key.is_empty() && format.session_token.is_empty())
    {
        return Ok(());
    }
    if format.encrypt_algo.to_ascii_lowercase().starts_with("sm4") {
        return Err(VfsError::UnsupportedStorage(
            "SM4 encryption of the volume's secret key is not implemented".into(),
        ));
    }
    let digest: [u8; 16] = Md5::digest(format.uuid.as_bytes()).into();
    let key = UnboundKey::new(&AES_128_GCM, &digest)
        .map(LessSafeKey::new)
        .map_err(|_| VfsError::UnsupportedStorage("cannot set up AES-GCM".into()))?;
    let rng = SystemRandom::new();
    let seal = |plain: &str| -> Result<String> {
        if plain.is_empty() {
            return Ok(String::new());
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| VfsError::UnsupportedStorage("no randomness for a nonce".into()))?;
        let mut body = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .map_err(|_| VfsError::UnsupportedStorage("cannot encrypt the secret key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    };
    format.secret_key = seal(&format.secret_key)?;
    format.session_token = seal(&format.session_token)?;
    format.extra.insert("KeyEncrypted".into(), true.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings as `juicefs format` 1.4.2 wrote them for the test server's key `tesserask`.
    fn juicefs_settings() -> Format {
        Format::from_json(
            r#"{"Name":"h13-probe","UUID":"ec4628e1-593f-4184-bf3c-b132666f5447",
            "Storage":"s3","Bucket":"http://127.0.0.1:53985/tessera","AccessKey":"tesseraak",
            "SecretKey":"qgf3CjYBb2eKCn98NVl41dhSU7SI+ocVTZwRZ2KfuCWvXs8yCQ==","BlockSize":4096,
            "Compression":"none","EncryptAlgo":"aes256gcm-rsa","KeyEncrypted":true,
            "TrashDays":0,"MetaVersion":1,"MinClientVersion":"1.1.0-A","DirStats":true,
            "EnableACL":false}"#,
        )
        .unwrap()
    }

    #[test]
    fn decrypts_what_juicefs_encrypted() {
        let f = juicefs_settings();
        assert_eq!(
            plain_secrets(&f).unwrap(),
            ("tesserask".to_string(), String::new())
        );
    }

    #[test]
    fn sealed_secrets_open_again() {
        let mut f = Format::new("v", "9d5a2d1c-0000-4000-8000-000000000001", "s3", "b");
        f.secret_key = "sk".into();
        f.session_token = "tok".into();
        seal_secrets(&mut f).unwrap();
        assert_ne!(f.secret_key, "sk");
        assert_eq!(f.extra["KeyEncrypted"], true);
        let sealed = f.secret_key.clone();
        // Sealing twice changes nothing.
        seal_secrets(&mut f).unwrap();
        assert_eq!(f.secret_key, sealed);
        assert_eq!(
            plain_secrets(&f).unwrap(),
            ("sk".to_string(), "tok".to_string())
        );
        let mut keyless = Format::new("v", "u", "file", "/b/");
        seal_secrets(&mut keyless).unwrap();
        assert!(!keyless.extra.contains_key("KeyEncrypted"));
    }

    #[test]
    fn plain_settings_pass_through_and_bad_ones_fail() {
        let mut f = juicefs_settings();
        f.extra.remove("KeyEncrypted");
        assert_eq!(plain_secrets(&f).unwrap().0, f.secret_key);
        let mut f = juicefs_settings();
        f.uuid = "another-volume".into();
        assert_eq!(plain_secrets(&f).unwrap_err().errno(), libc::EIO);
        let mut f = juicefs_settings();
        f.secret_key = "removed".into();
        assert!(plain_secrets(&f)
            .unwrap_err()
            .to_string()
            .contains("juicefs config"));
        let mut f = juicefs_settings();
        f.secret_key = "!!".into();
        assert!(plain_secrets(&f).is_err());
        let mut f = juicefs_settings();
        f.encrypt_algo = "sm4gcm".into();
        assert!(plain_secrets(&f).unwrap_err().to_string().contains("SM4"));
    }
}

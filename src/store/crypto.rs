//! Personal data at rest: AES-256-GCM for values, a keyed hash for look-ups.
//!
//! One master key (`storage.encryption_key`, base64 of 32 bytes) gives two subkeys,
//! HMAC-SHA256(master, "sara/enc") for AES-256-GCM and HMAC-SHA256(master, "sara/index") for
//! the contact key, so that the look-up hash never uses the encryption key itself.
//!
//! The primitives are ring's, already in the build as rustls's provider: its assembly AES-GCM
//! seals a value in ~2 µs even in a debug build, where the pure-Rust `aes-gcm` took ~80 µs
//! and capped the debug group commit at a sixth of its rate.
//!
//! A sealed value is `0x01 ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag`; the leading byte
//! names this format so that a later key rotation can tell old values from new. The
//! associated data is the column's name ([`Field`]), so a ciphertext copied into another
//! column does not open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use sara_actors::model::Phone;

use super::StoreError;

/// The format byte in front of every sealed value.
const FORMAT_V1: u8 = 1;
/// AES-GCM's tag, appended to the ciphertext.
const TAG_LEN: usize = 16;

/// The master key. Its `Debug` hides the bytes, so it can sit in logged structures.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

impl EncryptionKey {
    /// Reads `storage.encryption_key`: base64 (standard alphabet, padded) of exactly 32 bytes.
    /// The error never repeats the value.
    pub fn from_base64(text: &str) -> Result<EncryptionKey, StoreError> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| {
            StoreError::Unavailable(
                "storage.encryption_key (SARA_STORAGE__ENCRYPTION_KEY) is not base64; \
                 expected base64 of 32 random bytes, e.g. `openssl rand -base64 32`"
                    .to_string(),
            )
        })?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::Unavailable(format!(
                "storage.encryption_key (SARA_STORAGE__ENCRYPTION_KEY) decodes to {} bytes; \
                 expected base64 of exactly 32 random bytes, e.g. `openssl rand -base64 32`",
                bytes.len()
            ))
        })?;
        Ok(EncryptionKey(key))
    }

    /// A fresh random key from the operating system.
    pub fn generate() -> EncryptionKey {
        EncryptionKey(random())
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

/// Which column a value belongs to: the associated data of its seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    ContactPhone,
    ConversationState,
    TurnText,
    TurnReply,
    /// The rest of a turn's reply beside its text (buttons, hand-over, hang-up, silence).
    TurnReplyExtra,
    TurnUnderstood,
    /// What a voice caller heard of a reply they interrupted.
    TurnHeard,
    VoicemailUrl,
    VoicemailTranscription,
    BookingPhone,
    BookingName,
    BookingEmail,
    OutboxRecipient,
    OutboxPayload,
    JobPayload,
    /// The known value that tells whether a key opens this database.
    KeyCheck,
    /// A reply kept in the processed-webhook cache (Redis).
    CachedReply,
}

impl Field {
    fn label(self) -> &'static [u8] {
        match self {
            Field::ContactPhone => b"contacts.phone",
            Field::ConversationState => b"conversations.state",
            Field::TurnText => b"turns.text",
            Field::TurnReply => b"turns.reply",
            Field::TurnReplyExtra => b"turns.reply_extra",
            Field::TurnUnderstood => b"turns.understood",
            Field::TurnHeard => b"turns.heard",
            Field::VoicemailUrl => b"voicemails.recording_url",
            Field::VoicemailTranscription => b"voicemails.transcription",
            Field::BookingPhone => b"bookings.phone",
            Field::BookingName => b"bookings.name",
            Field::BookingEmail => b"bookings.email",
            Field::OutboxRecipient => b"outbox.recipient",
            Field::OutboxPayload => b"outbox.payload",
            Field::JobPayload => b"jobs.payload",
            Field::KeyCheck => b"store_key_check.sealed",
            Field::CachedReply => b"cache.reply",
        }
    }
}

/// Bytes from the operating system's random source. Its failure is not a condition Sara
/// can work around (no key, no nonce), hence the `expect`.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source works");
    bytes
}

/// The subkeys in use: seals and opens values, hashes phones into contact keys.
pub(crate) struct Sealer {
    cipher: LessSafeKey,
    index: hmac::Key,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// HMAC-SHA256(master, label): a subkey for one purpose.
fn derive(master: &EncryptionKey, label: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &master.0), label);
    tag.as_ref().try_into().expect("HMAC-SHA256 gives 32 bytes")
}

impl Sealer {
    pub(crate) fn new(master: &EncryptionKey) -> Sealer {
        let enc = derive(master, b"sara/enc");
        let index = derive(master, b"sara/index");
        let cipher = UnboundKey::new(&AES_256_GCM, &enc).expect("AES-256 takes a 32-byte key");
        Sealer {
            cipher: LessSafeKey::new(cipher),
            index: hmac::Key::new(hmac::HMAC_SHA256, &index),
        }
    }

    /// hex(HMAC-SHA256(index key, E.164 phone)): how rows find a contact without the phone.
    pub(crate) fn contact_key(&self, phone: &Phone) -> String {
        self.pseudonym(phone.as_str())
    }

    /// hex(HMAC-SHA256(index key, value)): a stable stand-in that cannot be brute-forced
    /// back to a phone number without the key.
    pub(crate) fn pseudonym(&self, value: &str) -> String {
        hex(hmac::sign(&self.index, value.as_bytes()).as_ref())
    }

    /// Seals with a fresh random 96-bit nonce. Random nonces are safe for far more values
    /// than Sara will ever write under one key (the usual bound is 2^32).
    pub(crate) fn seal(&self, field: Field, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(field.label()),
                &mut out[1 + NONCE_LEN..],
            )
            .expect("AES-GCM seals any value shorter than 64 GiB");
        out.extend_from_slice(tag.as_ref());
        out
    }

    pub(crate) fn seal_str(&self, field: Field, plain: &str) -> Vec<u8> {
        self.seal(field, plain.as_bytes())
    }

    /// Opens a sealed value. A value written under another key (or altered) is an error that
    /// says so, never garbage.
    pub(crate) fn open(&self, field: Field, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let body = match sealed.split_first() {
            Some((&FORMAT_V1, body)) if body.len() >= NONCE_LEN + TAG_LEN => body,
            _ => {
                return Err(StoreError::Corrupt(
                    "a personal-data value is not in the encrypted format \
                     (written before encryption at rest, or damaged)"
                        .to_string(),
                ));
            }
        };
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("split at the nonce length");
        let mut buffer = ciphertext.to_vec();
        let plain_len = self
            .cipher
            .open_in_place(nonce, Aad::from(field.label()), &mut buffer)
            .map_err(|_| {
                StoreError::Corrupt(
                    "cannot decrypt personal data: it was written with another \
                     storage.encryption_key, or altered"
                        .to_string(),
                )
            })?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }

    pub(crate) fn open_str(&self, field: Field, sealed: &[u8]) -> Result<String, StoreError> {
        String::from_utf8(self.open(field, sealed)?)
            .map_err(|_| StoreError::Corrupt("decrypted personal data is not UTF-8".to_string()))
    }

    pub(crate) fn open_opt(
        &self,
        field: Field,
        sealed: Option<&[u8]>,
    ) -> Result<Option<String>, StoreError> {
        sealed.map(|s| self.open_str(field, s)).transpose()
    }
}

/// Lowercase hex, for contact keys.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The key file beside a SQLite database: `sara.db` → `sara.db.key`.
pub(crate) fn key_file_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Reads the key file, or creates it (mode 0600) with a fresh key when it does not exist.
/// Creation is atomic: the key is written to a private temporary file, then hard-linked to
/// its name, which fails if another process got there first (then its key is used).
pub(crate) fn load_or_create_key_file(path: &Path) -> Result<EncryptionKey, StoreError> {
    let unreadable = |e: std::io::Error| {
        StoreError::Unavailable(format!(
            "cannot read the encryption key file {}: {}",
            path.display(),
            e.kind()
        ))
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return EncryptionKey::from_base64(&text).map_err(|_| {
                StoreError::Unavailable(format!(
                    "the encryption key file {} does not hold base64 of 32 bytes",
                    path.display()
                ))
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unreadable(e)),
    }
    let key = EncryptionKey::generate();
    let cannot_create = |e: std::io::Error| {
        StoreError::Unavailable(format!(
            "cannot create the encryption key file {}: {}",
            path.display(),
            e.kind()
        ))
    };
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temp = PathBuf::from(temp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        writeln!(file, "{}", key.to_base64())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(cannot_create(e));
    }
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                "created an encryption key file for personal data at rest; back it up with \
                 the database: without it the data cannot be read"
            );
            Ok(key)
        }
        // Another process created it between our read and our link: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(unreadable)?;
            EncryptionKey::from_base64(&text).map_err(|_| {
                StoreError::Unavailable(format!(
                    "the encryption key file {} does not hold base64 of 32 bytes",
                    path.display()
                ))
            })
        }
        Err(e) => Err(cannot_create(e)),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the encryption key file is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_column() {
        let key = EncryptionKey::generate();
        let sealer = Sealer::new(&key);
        let sealed = sealer.seal_str(Field::BookingName, "Sam Ortiz");
        assert_eq!(sealed[0], FORMAT_V1);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + "Sam Ortiz".len() + TAG_LEN);
        assert_eq!(
            sealer.open_str(Field::BookingName, &sealed).expect("opens"),
            "Sam Ortiz"
        );
        // A fresh nonce each time: the same value seals differently.
        assert_ne!(sealed, sealer.seal_str(Field::BookingName, "Sam Ortiz"));

        let other = Sealer::new(&EncryptionKey::generate());
        let err = other
            .open_str(Field::BookingName, &sealed)
            .expect_err("wrong key");
        assert!(err.to_string().contains("another storage.encryption_key"));
        assert!(sealer.open_str(Field::TurnText, &sealed).is_err());
        assert!(sealer.open_str(Field::BookingName, b"Sam Ortiz").is_err());
        assert!(sealer.open_str(Field::BookingName, &[]).is_err());
    }

    #[test]
    fn the_contact_key_is_a_keyed_hash_not_the_encryption_key() {
        let key = EncryptionKey::from_base64(&BASE64.encode([7u8; 32])).expect("valid");
        let sealer = Sealer::new(&key);
        let phone = Phone::parse("+15550000001").expect("phone");
        let contact = sealer.contact_key(&phone);
        assert_eq!(contact.len(), 64);
        assert_eq!(contact, sealer.contact_key(&phone), "stable");
        assert!(!contact.contains("5550000001"));
        assert_ne!(
            contact,
            Sealer::new(&EncryptionKey::generate()).contact_key(&phone)
        );
        // Not the same subkey as the cipher's: HMAC(index) ≠ HMAC(enc).
        assert_ne!(derive(&key, b"sara/enc"), derive(&key, b"sara/index"));
    }

    #[test]
    fn a_bad_key_is_refused_without_repeating_it() {
        for bad in ["not base64!", "c2hvcnQ=", ""] {
            let err = EncryptionKey::from_base64(bad).expect_err("refused");
            let text = err.to_string();
            assert!(text.contains("SARA_STORAGE__ENCRYPTION_KEY"), "{text}");
            assert!(bad.is_empty() || !text.contains(bad), "{text}");
        }
        assert!(format!("{:?}", EncryptionKey::generate()).ends_with("(..)"));
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = key_file_for(&dir.path().join("sara.db"));
        assert!(path.ends_with("sara.db.key"));
        let first = load_or_create_key_file(&path).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_or_create_key_file(&path).expect("reused");
        assert_eq!(first.0, again.0);
        // Only the key file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sara.db.key")]);

        std::fs::write(&path, "garbage").expect("overwrite");
        let err = load_or_create_key_file(&path).expect_err("garbage key file");
        assert!(err.to_string().contains("does not hold base64"));
    }
}

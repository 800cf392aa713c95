//! The providers' ciphers, in kube-apiserver's stored formats
//! (`k8s.io/apiserver/pkg/storage/value/encrypt`): each stored value is the key's
//! prefix `k8s:enc:<provider>:v1:<key name>:` followed by
//!
//! - `aesgcm`: a random 12-byte nonce, then the AES-GCM ciphertext and tag, with the
//!   store key as additional authenticated data (a value copied under another key
//!   does not decrypt);
//! - `aescbc`: a random 16-byte IV, then the AES-CBC ciphertext of the PKCS#7-padded
//!   value;
//! - `secretbox`: a random 24-byte nonce, then NaCl's secretbox (XSalsa20-Poly1305:
//!   the tag, then the ciphertext);
//!
//! and `identity` stores values as they are.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{AesGcm, KeyInit};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

/// The beginning of every encrypted value (kube's transformers' common prefix).
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Bytes of an AES-GCM nonce (kube refuses any other size).
const GCM_NONCE: usize = 12;
/// Bytes of an AES block, the CBC IV.
const AES_BLOCK: usize = 16;
/// Bytes of a secretbox nonce.
const SECRETBOX_NONCE: usize = 24;

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// The provider kinds of an `EncryptionConfiguration`, as its file names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// AES-GCM with a random nonce.
    AesGcm,
    /// AES-CBC with PKCS#7 padding.
    AesCbc,
    /// XSalsa20-Poly1305 (NaCl secretbox).
    Secretbox,
    /// No encryption.
    Identity,
}

impl ProviderKind {
    /// The provider's name in the file and in stored prefixes.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::AesGcm => "aesgcm",
            ProviderKind::AesCbc => "aescbc",
            ProviderKind::Secretbox => "secretbox",
            ProviderKind::Identity => "identity",
        }
    }

    /// The key sizes in bytes the provider accepts.
    pub fn key_sizes(self) -> &'static [usize] {
        match self {
            ProviderKind::AesGcm => &[16, 24, 32],
            ProviderKind::AesCbc | ProviderKind::Secretbox => &[32],
            ProviderKind::Identity => &[],
        }
    }
}

/// The cipher of one key.
enum Cipher {
    Aes128Gcm(Box<aes_gcm::Aes128Gcm>),
    Aes192Gcm(Box<Aes192Gcm>),
    Aes256Gcm(Box<aes_gcm::Aes256Gcm>),
    /// The AES-256 key (a CBC cipher is made per value, with its IV).
    AesCbc(Box<[u8; 32]>),
    Secretbox(Box<crypto_secretbox::XSalsa20Poly1305>),
    Identity,
}

/// One key of one provider: what its values start with, and how they are sealed.
pub struct KeyTransformer {
    kind: ProviderKind,
    name: String,
    prefix: Vec<u8>,
    cipher: Cipher,
}

impl std::fmt::Debug for KeyTransformer {
    // Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTransformer")
            .field("provider", &self.kind.name())
            .field("key", &self.name)
            .finish()
    }
}

/// Fills `out` with random bytes from the system's generator.
fn random(out: &mut [u8]) -> Result<(), String> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(out)
        .map_err(|_| "the system random number generator failed".to_string())
}

fn wrong_size(kind: ProviderKind, len: usize) -> String {
    format!(
        "secret is not of the expected length, got {len}, expected one of {:?}",
        kind.key_sizes()
    )
}

impl KeyTransformer {
    /// The `identity` provider.
    pub fn identity() -> Self {
        KeyTransformer {
            kind: ProviderKind::Identity,
            name: String::new(),
            prefix: Vec::new(),
            cipher: Cipher::Identity,
        }
    }

    /// The key `name` of provider `kind` with the (decoded) `secret`; an error says
    /// why the secret does not fit the provider.
    pub fn new(kind: ProviderKind, name: &str, secret: &[u8]) -> Result<Self, String> {
        let cipher = match (kind, secret.len()) {
            (ProviderKind::AesGcm, 16) => Cipher::Aes128Gcm(Box::new(
                aes_gcm::Aes128Gcm::new_from_slice(secret).map_err(|e| e.to_string())?,
            )),
            (ProviderKind::AesGcm, 24) => Cipher::Aes192Gcm(Box::new(
                Aes192Gcm::new_from_slice(secret).map_err(|e| e.to_string())?,
            )),
            (ProviderKind::AesGcm, 32) => Cipher::Aes256Gcm(Box::new(
                aes_gcm::Aes256Gcm::new_from_slice(secret).map_err(|e| e.to_string())?,
            )),
            (ProviderKind::AesCbc, 32) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(secret);
                Cipher::AesCbc(Box::new(key))
            }
            (ProviderKind::Secretbox, 32) => Cipher::Secretbox(Box::new(
                <crypto_secretbox::XSalsa20Poly1305 as crypto_secretbox::KeyInit>::new_from_slice(
                    secret,
                )
                .map_err(|e| e.to_string())?,
            )),
            (ProviderKind::Identity, _) => return Ok(Self::identity()),
            (kind, len) => return Err(wrong_size(kind, len)),
        };
        Ok(KeyTransformer {
            kind,
            name: name.to_string(),
            prefix: format!("k8s:enc:{}:v1:{name}:", kind.name()).into_bytes(),
            cipher,
        })
    }

    /// The provider.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The key's name (empty for `identity`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this key's stored values start with (empty for `identity`).
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The stored form of `value` at store key `key`: the prefix, then the sealed
    /// value.
    pub fn seal(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = self.prefix.clone();
        match &self.cipher {
            Cipher::Aes128Gcm(c) => gcm_seal(c.as_ref(), key, value, &mut out)?,
            Cipher::Aes192Gcm(c) => gcm_seal(c.as_ref(), key, value, &mut out)?,
            Cipher::Aes256Gcm(c) => gcm_seal(c.as_ref(), key, value, &mut out)?,
            Cipher::AesCbc(k) => {
                let mut iv = [0u8; AES_BLOCK];
                random(&mut iv)?;
                let enc = cbc::Encryptor::<aes::Aes256>::new(k.as_ref().into(), &iv.into());
                out.extend_from_slice(&iv);
                out.extend_from_slice(&enc.encrypt_padded_vec::<Pkcs7>(value));
            }
            Cipher::Secretbox(c) => {
                use crypto_secretbox::aead::Aead as _;
                let mut nonce = [0u8; SECRETBOX_NONCE];
                random(&mut nonce)?;
                let sealed = c
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), value)
                    .map_err(|_| "secretbox could not seal the value".to_string())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            Cipher::Identity => out.extend_from_slice(value),
        }
        Ok(out)
    }

    /// The value sealed in `data` (the stored value without this key's prefix) at
    /// store key `key`.
    pub fn open(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        match &self.cipher {
            Cipher::Aes128Gcm(c) => gcm_open(c.as_ref(), key, data),
            Cipher::Aes192Gcm(c) => gcm_open(c.as_ref(), key, data),
            Cipher::Aes256Gcm(c) => gcm_open(c.as_ref(), key, data),
            Cipher::AesCbc(k) => {
                if data.len() < AES_BLOCK {
                    return Err("the stored data was shorter than the required size".into());
                }
                let (iv, sealed) = data.split_at(AES_BLOCK);
                if sealed.len() % AES_BLOCK != 0 {
                    return Err("the stored data is not a multiple of the block size".into());
                }
                let iv: [u8; AES_BLOCK] = iv
                    .try_into()
                    .map_err(|_| "the stored data was shorter than the required size")?;
                cbc::Decryptor::<aes::Aes256>::new(k.as_ref().into(), &iv.into())
                    .decrypt_padded_vec::<Pkcs7>(sealed)
                    .map_err(|_| "invalid PKCS7 data (empty or not padded)".to_string())
            }
            Cipher::Secretbox(c) => {
                use crypto_secretbox::aead::Aead as _;
                if data.len() < SECRETBOX_NONCE {
                    return Err("the stored data was shorter than the required size".into());
                }
                let (nonce, sealed) = data.split_at(SECRETBOX_NONCE);
                c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                    .map_err(|_| "output array too small or message authentication failed".into())
            }
            Cipher::Identity => {
                // kube's identity transformer: encrypted data is not read as plain.
                if data.starts_with(ENCRYPTED_PREFIX) {
                    return Err("identity transformer tried to read encrypted data".into());
                }
                Ok(data.to_vec())
            }
        }
    }
}

fn gcm_seal<C>(c: &C, key: &[u8], value: &[u8], out: &mut Vec<u8>) -> Result<(), String>
where
    C: Aead + aes_gcm::AeadCore<NonceSize = aes_gcm::aead::consts::U12>,
{
    let mut nonce = [0u8; GCM_NONCE];
    random(&mut nonce)?;
    let payload = Payload {
        msg: value,
        aad: key,
    };
    let sealed = c
        .encrypt(&nonce.into(), payload)
        .map_err(|_| "AES-GCM could not seal the value".to_string())?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(())
}

fn gcm_open<C>(c: &C, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String>
where
    C: Aead + aes_gcm::AeadCore<NonceSize = aes_gcm::aead::consts::U12>,
{
    if data.len() < GCM_NONCE {
        return Err("the stored data was shorter than the required size".into());
    }
    let (nonce, sealed) = data.split_at(GCM_NONCE);
    let nonce: [u8; GCM_NONCE] = nonce
        .try_into()
        .map_err(|_| "the stored data was shorter than the required size")?;
    c.decrypt(
        &nonce.into(),
        Payload {
            msg: sealed,
            aad: key,
        },
    )
    .map_err(|_| "cipher: message authentication failed".to_string())
}

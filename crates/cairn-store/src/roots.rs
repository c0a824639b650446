//! The authorities a store trusts besides the system's: a private CA's
//! PEM certificates, for S3 servers whose certificate it signed. Used by
//! the backends and by the extra S3 requests alike.

use object_store::ClientOptions;

use crate::{StoreError, StoreResult};

/// `opts` trusting the authorities of the PEM bundle `pem` too.
pub(crate) fn with_roots(
    url: &str,
    mut opts: ClientOptions,
    pem: Option<&[u8]>,
) -> StoreResult<ClientOptions> {
    let Some(pem) = pem else {
        return Ok(opts);
    };
    let certs = object_store::Certificate::from_pem_bundle(pem).map_err(|e| {
        StoreError::InvalidLocation {
            url: url.to_owned(),
            message: format!("the CA bundle: {e}"),
        }
    })?;
    if certs.is_empty() {
        return Err(StoreError::InvalidLocation {
            url: url.to_owned(),
            message: "the CA bundle holds no PEM certificate".into(),
        });
    }
    for c in certs {
        opts = opts.with_root_certificate(c);
    }
    Ok(opts)
}

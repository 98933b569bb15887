//! The erasure filter of every write path: `seglake_erased(profile_id)` and
//! `seglake_refuse_erased(profile_id)`.
//!
//! `FORGET PROFILE` leaves a tombstone: the keyed hash (HMAC-SHA256 with
//! the warehouse's erasure key) of the erased id, never the id itself. A
//! write keeps a row only when the hash of its `profile_id` is not among
//! the tombstones, so the engine builds these functions per statement from
//! the key and the tombstones ([`ErasedProfiles`]); they are not in the
//! function registry and SQL cannot call them. They ship to workers with
//! their state ([`crate::SeglakeCodec`]), like any function of a plan.
//!
//! - `seglake_erased(id) -> BOOLEAN`: whether `id` was erased (NULL for
//!   NULL); write paths filter with `NOT seglake_erased(profile_id)`.
//! - `seglake_refuse_erased(id) -> VARCHAR`: `id` itself, or an error when
//!   it was erased: `UPDATE ... SET profile_id = ...` and `MERGE` clauses
//!   setting `profile_id` fail (and commit nothing) instead of writing an
//!   erased id.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{BooleanBuilder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::utils::take_function_args;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::strings::{for_each_str, is_string_type, scalar_str};

/// Name of the filter (`seglake_erased(profile_id)`).
pub const ERASED: &str = "seglake_erased";
/// Name of the guard (`seglake_refuse_erased(profile_id)`).
pub const REFUSE_ERASED: &str = "seglake_refuse_erased";

/// The message of a write refused by the guard. It never names the id.
pub const REFUSED_MESSAGE: &str =
    "the statement would write a profile_id that was erased (FORGET PROFILE): nothing was written";

/// A keyed hash of an erased profile id.
pub type ErasureHash = [u8; 32];

/// The warehouse's erasure key: 32 secret bytes. Its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct ErasureKey([u8; 32]);

impl fmt::Debug for ErasureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErasureKey(..)")
    }
}

impl ErasureKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HMAC-SHA256 of `profile_id` under this key.
    pub fn hash(&self, profile_id: &str) -> ErasureHash {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(profile_id.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The tombstones a write filters: the key and the hashes of the erased ids.
#[derive(Clone, PartialEq, Eq)]
pub struct ErasedProfiles {
    key: ErasureKey,
    hashes: Arc<HashSet<ErasureHash>>,
}

impl fmt::Debug for ErasedProfiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErasedProfiles({} tombstones)", self.hashes.len())
    }
}

impl ErasedProfiles {
    pub fn new(key: ErasureKey, hashes: impl IntoIterator<Item = ErasureHash>) -> Self {
        Self {
            key,
            hashes: Arc::new(hashes.into_iter().collect()),
        }
    }

    pub fn key(&self) -> &ErasureKey {
        &self.key
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether `profile_id` was erased.
    pub fn contains(&self, profile_id: &str) -> bool {
        !self.hashes.is_empty() && self.hashes.contains(&self.key.hash(profile_id))
    }

    /// Whether `hash` is a tombstone.
    pub fn contains_hash(&self, hash: &ErasureHash) -> bool {
        self.hashes.contains(hash)
    }

    /// The tombstones of `self` that `before` did not have.
    pub fn since(&self, before: &ErasedProfiles) -> ErasedProfiles {
        let key = if before.key == self.key {
            self.key.clone()
        } else {
            // Another key: every tombstone is new to `before`.
            return self.clone();
        };
        ErasedProfiles::new(
            key,
            self.hashes
                .iter()
                .filter(|h| !before.hashes.contains(*h))
                .copied(),
        )
    }

    /// `seglake_erased(arg)`: true when `arg` was erased.
    pub fn erased(&self, arg: Expr) -> Expr {
        self.udf(Mode::Erased).call(vec![arg])
    }

    /// `seglake_refuse_erased(arg)`: `arg`, or an error when it was erased.
    pub fn refuse_erased(&self, arg: Expr) -> Expr {
        self.udf(Mode::Refuse).call(vec![arg])
    }

    fn udf(&self, mode: Mode) -> ScalarUDF {
        ScalarUDF::new_from_impl(ErasedFunction::new(mode, self.clone()))
    }

    /// The codec's bytes: the key, then the hashes.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.key.bytes());
        for h in self.hashes.iter() {
            buf.extend_from_slice(h);
        }
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() < 32 || !buf.len().is_multiple_of(32) {
            return plan_err!("malformed erasure filter ({} bytes)", buf.len());
        }
        let mut chunks = buf.chunks_exact(32).map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        });
        let key = ErasureKey(chunks.next().expect("checked above"));
        Ok(Self::new(key, chunks))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Erased,
    Refuse,
}

/// The implementation of both functions.
#[derive(Debug)]
pub struct ErasedFunction {
    mode: Mode,
    erased: ErasedProfiles,
    signature: Signature,
}

impl PartialEq for ErasedFunction {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode && self.erased == other.erased
    }
}

impl Eq for ErasedFunction {}

impl Hash for ErasedFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.mode.hash(state);
        self.erased.hashes.len().hash(state);
    }
}

impl ErasedFunction {
    fn new(mode: Mode, erased: ErasedProfiles) -> Self {
        Self {
            mode,
            erased,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// The function `name` with the state the codec wrote into `buf`.
    pub(crate) fn decode(name: &str, buf: &[u8]) -> Result<Option<ScalarUDF>> {
        let mode = match name {
            ERASED => Mode::Erased,
            REFUSE_ERASED => Mode::Refuse,
            _ => return Ok(None),
        };
        let erased = ErasedProfiles::decode(buf)?;
        Ok(Some(ScalarUDF::new_from_impl(Self::new(mode, erased))))
    }

    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        self.erased.encode(buf)
    }
}

impl ScalarUDFImpl for ErasedFunction {
    fn name(&self) -> &str {
        match self.mode {
            Mode::Erased => ERASED,
            Mode::Refuse => REFUSE_ERASED,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.mode {
            Mode::Erased => DataType::Boolean,
            Mode::Refuse => DataType::Utf8,
        })
    }

    /// Ids are compared as text: any other type is cast to VARCHAR.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if is_string_type(t) => Ok(vec![t.clone()]),
            [_] => Ok(vec![DataType::Utf8]),
            _ => plan_err!(
                "{} expects 1 argument, got {}",
                self.name(),
                arg_types.len()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = take_function_args(self.name(), &args.args)?;
        let erased = &self.erased;
        match (self.mode, arg) {
            (Mode::Erased, ColumnarValue::Scalar(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Boolean(scalar_str(v)?.map(|s| erased.contains(s))),
            )),
            (Mode::Erased, ColumnarValue::Array(array)) => {
                let mut out = BooleanBuilder::with_capacity(array.len());
                for_each_str(array.as_ref(), |_, v| {
                    out.append_option(v.map(|s| erased.contains(s)));
                    Ok(())
                })?;
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
            (Mode::Refuse, ColumnarValue::Scalar(v)) => {
                let s = scalar_str(v)?;
                if s.is_some_and(|s| erased.contains(s)) {
                    return exec_err!("{REFUSED_MESSAGE}");
                }
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                    s.map(str::to_string),
                )))
            }
            (Mode::Refuse, ColumnarValue::Array(array)) => {
                let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
                for_each_str(array.as_ref(), |_, v| {
                    if v.is_some_and(|s| erased.contains(s)) {
                        return exec_err!("{REFUSED_MESSAGE}");
                    }
                    out.append_option(v);
                    Ok(())
                })?;
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

/// The erasure function inside `udf`, if it is one.
pub(crate) fn as_erased_function(udf: &ScalarUDF) -> Option<&ErasedFunction> {
    udf.inner().downcast_ref::<ErasedFunction>()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    use super::*;

    fn hex(h: &[u8]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231, test case 2 (key "Jefe"), through a 32-byte key padded
    /// with zeros: HMAC pads short keys with zeros, so it is the same MAC.
    #[test]
    fn the_hash_is_hmac_sha256() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&ErasureKey::new(key).hash("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn profiles() -> ErasedProfiles {
        let key = ErasureKey::new([7u8; 32]);
        let hashes = [key.hash("p3"), key.hash("p9")];
        ErasedProfiles::new(key, hashes)
    }

    fn invoke(udf: &ScalarUDF, input: ArrayRef) -> Result<ArrayRef> {
        let n = input.len();
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(input)],
            arg_fields: vec![Arc::new(Field::new("p", DataType::Utf8, true))],
            number_rows: n,
            return_field: Arc::new(Field::new("r", udf.return_type(&[DataType::Utf8])?, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        udf.invoke_with_args(args)?.into_array(n)
    }

    #[test]
    fn the_filter_marks_erased_ids_only() {
        let p = profiles();
        let input: ArrayRef = Arc::new(StringArray::from(vec![
            Some("p1"),
            Some("p3"),
            None,
            Some("p9"),
            Some("P3"),
        ]));
        let out = invoke(&p.udf(Mode::Erased), input).unwrap();
        let out = out.as_boolean();
        let got: Vec<Option<bool>> = out.iter().collect();
        assert_eq!(
            got,
            vec![Some(false), Some(true), None, Some(true), Some(false)]
        );
        assert!(p.contains("p3") && !p.contains("p4"));
    }

    #[test]
    fn the_guard_refuses_an_erased_id_without_naming_it() {
        let p = profiles();
        let ok: ArrayRef = Arc::new(StringArray::from(vec![Some("p1"), None]));
        let out = invoke(&p.udf(Mode::Refuse), Arc::clone(&ok)).unwrap();
        assert_eq!(out.as_string::<i32>(), ok.as_string::<i32>());
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["p1", "p9"]));
        let e = invoke(&p.udf(Mode::Refuse), bad).unwrap_err().to_string();
        assert!(e.contains("erased") && !e.contains("p9"), "{e}");
    }

    #[test]
    fn new_tombstones_are_those_the_earlier_set_lacks() {
        let key = ErasureKey::new([7u8; 32]);
        let before = ErasedProfiles::new(key.clone(), [key.hash("p3")]);
        let after = profiles().since(&before);
        assert_eq!(after.len(), 1);
        assert!(after.contains("p9") && !after.contains("p3"));
    }

    #[test]
    fn the_state_survives_the_codec_bytes() {
        let p = profiles();
        let mut buf = vec![];
        p.encode(&mut buf);
        assert_eq!(buf.len(), 32 * 3);
        assert_eq!(ErasedProfiles::decode(&buf).unwrap(), p);
        assert!(ErasedProfiles::decode(&buf[..40]).is_err());
        assert!(!format!("{p:?}").contains("07"));
    }
}

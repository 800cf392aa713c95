//! Admission of custom objects, in kube-apiserver's order: unknown fields pruned, then
//! the schema's defaults, then validation against the schema of the version written.

use rk8s_api::crd::definition;
use rk8s_api::validation::FieldError;
use rk8s_api::{AnyObject, CustomObject};

use super::CustomKinds;
use crate::decode::FieldValidation;
use crate::status::{ApiError, ApiResult};

/// Prunes and defaults a custom object by its version's schema; returns the warnings
/// for the fields pruned (`unknown field "spec.foo"`). Other objects are left alone.
pub fn mutate(obj: &mut AnyObject, kinds: &CustomKinds) -> ApiResult<Vec<String>> {
    let AnyObject::Custom(custom) = obj else {
        return Ok(Vec::new());
    };
    let kind = custom.kind;
    let mut value = custom.to_value();
    let warnings = kinds
        .with_version(&kind, |v| {
            let Some(schema) = &v.schema else {
                return Vec::new();
            };
            let pruned = schema.prune(&mut value);
            schema.default(&mut value);
            pruned.iter().map(rk8s_api::crd::prune::warning).collect()
        })
        .ok_or_else(ApiError::no_route)?;
    **custom = CustomObject::from_value(kind, value)
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.path(), e.inner())))?;
    Ok(warnings)
}

/// A create's decoding warnings with the fields its pruning removed, as `fieldValidation`
/// treats unknown fields: ignored, warned of, or (`Strict`) kube-apiserver's 400
/// `strict decoding error: unknown field "spec.foo"`.
pub(crate) fn with_pruned(
    pruned: Vec<String>,
    mut warnings: Vec<String>,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    match mode {
        FieldValidation::Ignore => Ok(warnings),
        FieldValidation::Warn => {
            warnings.extend(pruned);
            Ok(warnings)
        }
        FieldValidation::Strict if pruned.is_empty() => Ok(warnings),
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            pruned.join(", ")
        ))),
    }
}

/// Validates a custom object against its version's schema (no errors for other
/// objects).
pub fn validate(obj: &AnyObject, kinds: &CustomKinds) -> Vec<FieldError> {
    let AnyObject::Custom(custom) = obj else {
        return Vec::new();
    };
    let value = custom.to_value();
    kinds
        .with_version(&custom.kind, |v| {
            v.schema
                .as_ref()
                .map(|s| s.validate(&value))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// What the server writes into a CustomResourceDefinition (`current`: before an
/// update): its defaults and the status kube-apiserver's naming and establishing
/// controllers give it ([`rk8s_api::crd::definition`]): `NamesAccepted` unless another
/// CRD of the group took one of its names first, then `Established`.
pub fn mutate_definition(obj: &mut AnyObject, current: Option<&AnyObject>, kinds: &CustomKinds) {
    let AnyObject::CustomResourceDefinition(crd) = obj else {
        return;
    };
    match current {
        Some(AnyObject::CustomResourceDefinition(old)) => definition::prepare_for_update(crd, old),
        _ => definition::prepare_for_create(crd),
    }
    let name = crd.metadata.name.clone().unwrap_or_default();
    let others: Vec<_> = kinds.all().iter().map(|s| s.crd.clone()).collect();
    let taken = definition::TakenNames::from_crds(&crd.spec.group, &name, &others);
    crd.status = Some(definition::compute_status(
        crd,
        &taken,
        &crate::strategy::now(),
    ));
}

/// Validates a CustomResourceDefinition (and, for an update, what may not change).
pub fn validate_definition(new: &AnyObject, old: Option<&AnyObject>) -> Vec<FieldError> {
    match (new, old) {
        (AnyObject::CustomResourceDefinition(n), Some(AnyObject::CustomResourceDefinition(o))) => {
            definition::validate_crd_update(n, o)
        }
        (AnyObject::CustomResourceDefinition(n), _) => definition::validate_crd(n),
        _ => Vec::new(),
    }
}

//! Resource quantities (`500m`, `1Gi`, `1e3`) and container resource requirements.

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::{FieldError, Path};

const QUANTITY_SHAPE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const NANO: i128 = 1_000_000_000;

/// Why a quantity string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{QUANTITY_SHAPE}")]
pub struct QuantityError;

/// Parses a Kubernetes quantity into billionths of its unit (`"1500m"` → 1_500_000_000).
///
/// Values beyond the representable range saturate; fractions below one billionth are
/// rounded up, as upstream rounds them up to the nearest milli/nano.
pub fn parse_quantity(s: &str) -> Result<i128, QuantityError> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return Err(QuantityError);
    }

    let (base, exp10) = suffix_scale(suffix)?;
    let mut value: i128 = 0;
    for c in whole.chars().chain(frac.chars()) {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(c as u8 - b'0'));
    }
    // value * base * 10^(exp10 - len(frac)) in units, * NANO for nano units.
    let mut nanos = value.saturating_mul(base).saturating_mul(NANO);
    let shift = exp10 - frac.len() as i32;
    if shift >= 0 {
        for _ in 0..shift.min(40) {
            nanos = nanos.saturating_mul(10);
        }
    } else {
        let divisor = 10i128
            .checked_pow(shift.unsigned_abs())
            .unwrap_or(i128::MAX);
        nanos = (nanos + divisor - 1) / divisor;
    }
    Ok(if negative { -nanos } else { nanos })
}

/// (binary multiplier, decimal exponent) of a suffix.
fn suffix_scale(suffix: &str) -> Result<(i128, i32), QuantityError> {
    let binary = |p: u32| Ok((1024i128.pow(p), 0));
    match suffix {
        "" => Ok((1, 0)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => Ok((1, -9)),
        "u" => Ok((1, -6)),
        "m" => Ok((1, -3)),
        "k" => Ok((1, 3)),
        "M" => Ok((1, 6)),
        "G" => Ok((1, 9)),
        "T" => Ok((1, 12)),
        "P" => Ok((1, 15)),
        "E" => Ok((1, 18)),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E']).ok_or(QuantityError)?;
            let exp: i32 = exp.parse().map_err(|_| QuantityError)?;
            Ok((1, exp))
        }
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// Whether requests may be lower than limits (native resources other than hugepages).
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.starts_with("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

/// A resource name and quantity; returns the parsed quantity when both are fine.
fn validate_entry(
    name: &str,
    quantity: &str,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<i128> {
    for msg in super::meta::qualified_name(name) {
        errs.push(FieldError::invalid(path.clone(), name, &msg));
    }
    if !name.contains('/') && !is_standard_container_resource(name) {
        errs.push(FieldError::invalid(
            path.clone(),
            name,
            "must be a standard resource for containers",
        ));
    }
    match parse_quantity(quantity) {
        Err(e) => {
            errs.push(FieldError::invalid(path.clone(), quantity, &e.to_string()));
            None
        }
        Ok(v) if v < 0 => {
            errs.push(FieldError::invalid(
                path.clone(),
                quantity,
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(v) => Some(v),
    }
}

/// Limits and requests of one container: names, quantities, and requests ≤ limits.
pub(crate) fn validate_resource_requirements(
    req: &ResourceRequirements,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let limits = req.limits.clone().unwrap_or_default();
    for (name, q) in &limits {
        validate_entry(name, &q.0, &lim_path.key(name), errs);
    }
    for (name, q) in req.requests.iter().flatten() {
        let Some(request) = validate_entry(name, &q.0, &req_path.key(name), errs) else {
            continue;
        };
        match limits.get(name) {
            Some(limit_q) => {
                let Ok(limit) = parse_quantity(&limit_q.0) else {
                    continue;
                };
                if request != limit && !overcommit_allowed(name) {
                    let detail = format!("must be equal to {name} limit of {}", limit_q.0);
                    errs.push(FieldError::invalid(req_path.clone(), &q.0, &detail));
                } else if request > limit {
                    let detail = format!(
                        "must be less than or equal to {name} limit of {}",
                        limit_q.0
                    );
                    errs.push(FieldError::invalid(req_path.clone(), &q.0, &detail));
                }
            }
            None if !overcommit_allowed(name) => {
                let detail = "Limit must be set for non overcommitable resources";
                errs.push(FieldError::required(lim_path.clone(), detail));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_in_every_suffix_family() {
        assert_eq!(parse_quantity("1"), Ok(NANO));
        assert_eq!(parse_quantity("500m"), Ok(NANO / 2));
        assert_eq!(parse_quantity("1.5"), Ok(3 * NANO / 2));
        assert_eq!(parse_quantity("1Ki"), Ok(1024 * NANO));
        assert_eq!(parse_quantity("2k"), Ok(2000 * NANO));
        assert_eq!(parse_quantity("1e3"), Ok(1000 * NANO));
        assert_eq!(parse_quantity("-1"), Ok(-NANO));
        assert_eq!(parse_quantity(".5Gi"), Ok(512 * 1024 * 1024 * NANO));
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for bad in ["", "abc", "1Qi", "1.2.3", "Mi", "1 Gi", "e3"] {
            assert_eq!(parse_quantity(bad), Err(QuantityError), "{bad}");
        }
    }
}

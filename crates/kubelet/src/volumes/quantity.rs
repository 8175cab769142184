//! Just enough of Kubernetes' resource `Quantity` to compute downward-API values and tmpfs
//! sizes: parsing (`500m`, `1.5Gi`, `2e3`, `64M`) and upstream's `Value()` / `MilliValue()`,
//! which round up, away from zero. Arithmetic is exact (integers), not floating point.

/// A parsed quantity: `mantissa * 2^binary_exp * 10^decimal_exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    mantissa: i128,
    binary_exp: u32,
    decimal_exp: i32,
}

/// A quantity string that does not follow Kubernetes' quantity syntax.
#[derive(Debug, thiserror::Error)]
#[error("invalid quantity {quantity:?}")]
pub struct QuantityError {
    /// The rejected text.
    pub quantity: String,
}

impl Quantity {
    /// Parses Kubernetes' quantity syntax: a signed decimal number and an optional suffix
    /// (binary `Ki`..`Ei`, decimal `n`..`E`, or an exponent `e3`).
    pub(crate) fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let invalid = || QuantityError {
            quantity: text.to_owned(),
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(invalid());
        }

        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return Err(invalid());
        }
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| invalid())?
        };
        if negative {
            mantissa = -mantissa;
        }

        let (binary_exp, suffix_exp) = parse_suffix(suffix).ok_or_else(invalid)?;
        let decimal_exp = suffix_exp - i32::try_from(fraction.len()).map_err(|_| invalid())?;
        Ok(Quantity {
            mantissa,
            binary_exp,
            decimal_exp,
        })
    }

    /// The value times `10^scale`, rounded up away from zero (upstream's `ScaledValue` rule).
    /// Saturates at the i128 range instead of overflowing.
    pub(crate) fn ceil_scaled(&self, scale: i32) -> i128 {
        let mut value = self.mantissa;
        for _ in 0..self.binary_exp {
            value = value.saturating_mul(2);
        }
        let exp = self.decimal_exp + scale;
        if exp >= 0 {
            for _ in 0..exp {
                value = value.saturating_mul(10);
            }
            return value;
        }
        let Some(divisor) = 10i128.checked_pow(exp.unsigned_abs()) else {
            return value.signum();
        };
        let quotient = value / divisor;
        if value % divisor == 0 {
            quotient
        } else {
            quotient + value.signum()
        }
    }

    /// Upstream's `Value()`: whole units, rounded up.
    pub(crate) fn value(&self) -> i128 {
        self.ceil_scaled(0)
    }

    /// Upstream's `MilliValue()`: thousandths, rounded up.
    pub(crate) fn milli_value(&self) -> i128 {
        self.ceil_scaled(3)
    }

    /// A quantity of whole units.
    pub(crate) fn from_units(units: i128) -> Quantity {
        Quantity {
            mantissa: units,
            binary_exp: 0,
            decimal_exp: 0,
        }
    }
}

/// Returns (binary exponent, decimal exponent) for a suffix.
fn parse_suffix(suffix: &str) -> Option<(u32, i32)> {
    let binary = |power: u32| Some((power, 0));
    let decimal = |power: i32| Some((0, power));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exponent.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn parses_suffixes_like_upstream() {
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("64M").value(), 64_000_000);
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("1E-3").milli_value(), 1);
        assert_eq!(q("0.5Ki").value(), 512);
        assert_eq!(q(".5").milli_value(), 500);
    }

    #[test]
    fn values_round_up_away_from_zero() {
        assert_eq!(q("500m").value(), 1);
        assert_eq!(q("1001m").value(), 2);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("-500m").value(), -1);
        assert_eq!(q("0").value(), 0);
    }

    #[test]
    fn rejects_malformed_quantities() {
        for bad in ["", "abc", "1.2.3", "1Qi", "1e", "--1", "."] {
            assert!(Quantity::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}

//! The `region` key: a known region, a misspelling of one (an error with the suggestion), or
//! a well-formed region this build does not know yet (a warning: AWS opens new ones).

/// The regions of the `aws`, `aws-cn`, `aws-us-gov` and `aws-eusc` partitions this build knows.
const KNOWN: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// The area prefixes of region codes, by partition.
const AREAS: &[&str] = &[
    "af", "ap", "ca", "cn", "eu", "eusc", "il", "me", "mx", "sa", "us", "us-gov", "us-iso",
    "us-isob",
];

/// The directions region codes use.
const DIRECTIONS: &[&str] = &[
    "central",
    "east",
    "north",
    "northeast",
    "northwest",
    "south",
    "southeast",
    "southwest",
    "west",
    "de-east",
];

/// What is wrong with a region code, if anything.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegionProblem {
    /// Not a region code at all, or a misspelling of a known region (the suggestion).
    Invalid(Option<&'static str>),
    /// Well-formed (`<area>-<direction>-<n>`) but not a region this build knows.
    Unknown,
}

/// Checks `region`.
pub(crate) fn check(region: &str) -> Option<RegionProblem> {
    if KNOWN.contains(&region) {
        return None;
    }
    let suggestion = super::placeholder::closest(region, KNOWN.iter().copied());
    if suggestion.is_none() && well_formed(region) {
        return Some(RegionProblem::Unknown);
    }
    Some(RegionProblem::Invalid(suggestion))
}

/// `<area>-<direction>-<number>`, with a known area and direction.
fn well_formed(region: &str) -> bool {
    let Some((rest, number)) = region.rsplit_once('-') else {
        return false;
    };
    let numbered =
        !number.is_empty() && number.len() <= 2 && number.bytes().all(|b| b.is_ascii_digit());
    numbered
        && AREAS.iter().any(|area| {
            rest.strip_prefix(area)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|direction| DIRECTIONS.contains(&direction))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_pass() {
        for region in [
            "eu-west-1",
            "us-gov-west-1",
            "cn-northwest-1",
            "ap-southeast-7",
        ] {
            assert_eq!(check(region), None, "{region}");
        }
    }

    #[test]
    fn a_misspelling_names_the_region_meant() {
        assert_eq!(
            check("eu-wset-1"),
            Some(RegionProblem::Invalid(Some("eu-west-1")))
        );
        assert_eq!(
            check("us-east1"),
            Some(RegionProblem::Invalid(Some("us-east-1")))
        );
    }

    #[test]
    fn a_well_formed_new_region_is_only_unknown() {
        assert_eq!(check("eu-southwest-9"), Some(RegionProblem::Unknown));
        assert_eq!(check("us-gov-central-3"), Some(RegionProblem::Unknown));
    }

    #[test]
    fn anything_else_is_not_a_region() {
        for region in ["europe", "EU-WEST-1", "eu-west", "xx-west-1", "eu-up-1"] {
            assert!(
                matches!(check(region), Some(RegionProblem::Invalid(_))),
                "{region}"
            );
        }
    }
}

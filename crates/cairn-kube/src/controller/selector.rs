//! A `LabelSelector` as the string form list requests take.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// `app=db,tier in (a,b),!legacy`; empty for a selector that selects all.
pub fn to_query(sel: &LabelSelector) -> Result<String, String> {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => return Err(format!("unknown selector operator {op:?}")),
        });
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_become_queries() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_owned(), "db".to_owned())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            to_query(&sel).expect("valid"),
            "app=db,tier in (a,b),!legacy"
        );
        assert_eq!(to_query(&LabelSelector::default()).expect("valid"), "");
    }
}

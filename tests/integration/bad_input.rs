//! Scenario 6 of the fault suite, bad input: every field of both CRDs with
//! invalid values generated from the schemas in crds/ (wrong type, pattern,
//! length, enum, bounds, item counts, duplicates, missing required fields, each
//! CEL rule), plus values the schema cannot check (Kubernetes' own types, label
//! keys). Each is refused by the API server naming the field, or accepted and
//! then reported by the running operator (Ready=False or phase Failed) naming
//! it; the operator survives all of them and nothing blocks their deletion.

use crate::support::bed::{Bed, TestNames, create_namespace, delete_namespace, eventually};
use crate::support::fixtures;
use crate::support::operator::Operator;
use ecr_operator::crd::ecr_mirror::EcrMirror;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::{Map, Value, json};

/// The image the operator's EcrMirror Jobs would run; no pod runs on the bed.
const IMAGE: &str = "registry.example.com/ecr-operator:test";

/// Subtrees of Kubernetes' own types: the API server checks only their JSON
/// types, so one wrong-type value at their root is tried (and values the schema
/// cannot check, in `unchecked_by_the_schema`), not every field inside.
const KUBERNETES_TYPES: [&str; 5] = [
    "spec.namespaces.selector",
    "spec.jobTemplate.affinity",
    "spec.jobTemplate.tolerations",
    "spec.jobTemplate.resources",
    "spec.jobTemplate.volumes[0].configMap",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Registry,
    Mirror,
}

/// One step of a field path: a property, the first item of an array, or the
/// value of the key `k` of a map.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Item,
    Value,
}

fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Item => s.push_str("[0]"),
            Seg::Value => s.push_str(".k"),
        }
    }
    s
}

/// A field path without its indices: the API server writes `tags[0]`, CEL
/// messages `volumes[].name`. Other brackets (a list of errors) stay.
fn unindexed(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if after[digits..].starts_with(']') {
            rest = &after[digits + 1..];
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

struct Case {
    kind: Kind,
    field: String,
    what: String,
    /// The whole object's `spec`.
    spec: Value,
    /// metadata.name, when the case is about the name.
    name: Option<String>,
    /// Any of these in the answer names the field.
    names: Vec<String>,
}

/// What the schema walk produced: the cases, the fields walked and the CEL
/// rules' messages seen.
#[derive(Default)]
struct Generated {
    cases: Vec<Case>,
    fields: Vec<String>,
    rules: Vec<(Kind, String)>,
}

/// One CRD: its schema, a valid object using every field (where the generator
/// takes parents and array items from) and the valid base objects cases start from.
struct Crd {
    kind: Kind,
    schema: Value,
    sample: Value,
    base: Value,
    /// EcrMirror: the base for fields under spec.pull (a mirror has push or pull).
    base_pull: Option<Value>,
}

fn load_schema(file: &str) -> Value {
    let path = crate::support::bed::repo_root().join("crds").join(file);
    let text = std::fs::read_to_string(&path).expect("read CRD");
    let crd: Value = serde_saphyr::from_str(&text).expect("CRD YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn step<'a>(schema: &'a Value, sample: &'a Value, seg: &Seg) -> (&'a Value, &'a Value) {
    match seg {
        Seg::Key(k) => (&schema["properties"][k], &sample[k]),
        Seg::Item => (&schema["items"], &sample[0]),
        Seg::Value => (
            &schema["additionalProperties"],
            sample
                .as_object()
                .and_then(|m| m.values().next())
                .unwrap_or(&Value::Null),
        ),
    }
}

/// The sample cut down to the required fields: the parent a case creates.
fn minimal(sample: &Value, schema: &Value) -> Value {
    assert!(!sample.is_null(), "the sample lacks a field of {schema}");
    match (sample, schema.get("properties")) {
        (Value::Object(m), Some(props)) => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Value::Object(
                m.iter()
                    .filter(|(k, _)| required.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), minimal(v, &props[k])))
                    .collect(),
            )
        }
        (Value::Object(_), None) => json!({}),
        (Value::Array(items), _) => items.iter().map(|i| minimal(i, &schema["items"])).collect(),
        _ => sample.clone(),
    }
}

/// The value at `path` in `doc`, creating missing parents from the sample.
fn ensure_at<'a>(
    doc: &'a mut Value,
    schema: &Value,
    sample: &Value,
    path: &[Seg],
) -> &'a mut Value {
    let Some((first, rest)) = path.split_first() else {
        return doc;
    };
    let (child_schema, child_sample) = step(schema, sample, first);
    let slot = match first {
        Seg::Key(k) => doc
            .as_object_mut()
            .expect("an object")
            .entry(k.clone())
            .or_insert(Value::Null),
        Seg::Value => doc
            .as_object_mut()
            .expect("a map")
            .entry("k")
            .or_insert(Value::Null),
        Seg::Item => {
            let items = doc.as_array_mut().expect("an array");
            if items.is_empty() {
                items.push(Value::Null);
            }
            &mut items[0]
        }
    };
    if slot.is_null() && (!rest.is_empty() || !child_sample.is_null()) {
        *slot = minimal(child_sample, child_schema);
    }
    ensure_at(slot, child_schema, child_sample, rest)
}

/// `n` valid items, distinct in their keys (set items, map-list keys).
fn distinct(item: &Value, i: usize, keys: &[String]) -> Value {
    match item {
        Value::String(s) if s.chars().all(|c| c.is_ascii_digit()) => {
            json!(format!("{i:0width$}", width = s.len()))
        }
        Value::String(s) => json!(format!("{s}{i}")),
        Value::Object(m) => {
            let mut m = m.clone();
            for k in keys {
                if let Some(v) = m.get(k) {
                    let v = distinct(v, i, &[]);
                    m.insert(k.clone(), v);
                }
            }
            // Distinct mount paths too, so only the count is wrong.
            if let Some(Value::String(p)) = m.get("mountPath") {
                let p = format!("{p}{i}");
                m.insert("mountPath".into(), json!(p));
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// Whether a value holding `c` can match the anchored `pattern`: false only when
/// no atom of the pattern (literal, class, escape, `.`) can match `c`. Errs on
/// the side of true, so a value built from a false is sure to fail the pattern.
fn matchable(pattern: &str, c: char) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let escape_matches = |e: char| match e {
        'w' => c.is_ascii_alphanumeric() || c == '_',
        'd' => c.is_ascii_digit(),
        's' => c.is_whitespace(),
        'W' | 'D' | 'S' => true,
        other => other == c,
    };
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if escape_matches(chars[i + 1]) {
                    return true;
                }
                i += 2;
            }
            '[' => {
                let negated = chars.get(i + 1) == Some(&'^');
                let mut j = if negated { i + 2 } else { i + 1 };
                let mut hit = false;
                while chars[j] != ']' {
                    if chars[j] == '\\' {
                        hit |= escape_matches(chars[j + 1]);
                        j += 2;
                    } else if chars.get(j + 1) == Some(&'-') && chars.get(j + 2) != Some(&']') {
                        hit |= (chars[j]..=chars[j + 2]).contains(&c);
                        j += 3;
                    } else {
                        hit |= chars[j] == c;
                        j += 1;
                    }
                }
                if hit != negated {
                    return true;
                }
                i = j + 1;
            }
            '.' => return true,
            // Syntax, not characters: `?:` of a group and `{0,127}` count too,
            // which only makes the answer more often true.
            '^' | '$' | '(' | ')' | '|' | '*' | '+' | '?' => i += 1,
            other => {
                if other == c {
                    return true;
                }
                i += 1;
            }
        }
    }
    false
}

/// Values the pattern refuses whatever else they hold, derived from it; the
/// patterns that admit every character get a known value.
fn violating(pattern: &str, min_len: usize) -> Vec<String> {
    assert!(
        pattern.starts_with('^') && pattern.ends_with('$'),
        "an unanchored pattern: {pattern}"
    );
    let mut out: Vec<String> = [' ', ':', 'A', '!']
        .into_iter()
        .filter(|&c| !matchable(pattern, c))
        .take(2)
        .map(|c| {
            let mut v = format!("a{c}a");
            while v.len() < min_len {
                v.push('a');
            }
            v
        })
        .collect();
    if out.is_empty() {
        // spec.schedule: two fields are neither `@name [arg]` nor five fields.
        let known = [("^(@[a-z]+( [0-9a-z]+)?|[^ ]+( +[^ ]+){4})$", "every day")];
        let v = known
            .iter()
            .find(|(p, _)| *p == pattern)
            .unwrap_or_else(|| panic!("no value known to violate {pattern}"))
            .1;
        out.push(v.to_string());
    }
    out
}

fn number(schema: &Value, key: &str) -> Option<i64> {
    schema.get(key).and_then(Value::as_f64).map(|f| f as i64)
}

impl Crd {
    fn base_for(&self, path: &[Seg]) -> Value {
        match (&self.base_pull, path.get(1)) {
            (Some(pull), Some(Seg::Key(k))) if k == "pull" => pull.clone(),
            // spec.regions excludes spec.region (a CEL rule naming spec.regions):
            // without region, only the value under test can be refused.
            (_, Some(Seg::Key(k))) if self.kind == Kind::Registry && k == "regions" => {
                without_region(&self.base)
            }
            _ => self.base.clone(),
        }
    }

    /// The base object's spec with `edit` applied to the value at `path`.
    fn with(&self, path: &[Seg], edit: impl FnOnce(&mut Value)) -> Value {
        let mut doc = json!({ "spec": self.base_for(path) });
        edit(ensure_at(&mut doc, &self.schema, &self.sample, path));
        doc["spec"].take()
    }

    fn case(&self, g: &mut Generated, path: &[Seg], what: &str, value: Value) {
        let field = display(path);
        let mut names = vec![unindexed(&field)];
        // An array's or a map's own checks (count, duplicates) name the container.
        if let Some(Seg::Item | Seg::Value) = path.last() {
            names.push(unindexed(&display(&path[..path.len() - 1])));
        }
        let spec = self.with(path, |slot| *slot = value);
        g.cases.push(Case {
            kind: self.kind,
            field,
            what: what.to_string(),
            spec,
            name: None,
            names,
        });
    }

    /// Walks the schema at `path`, adding the invalid values of every field.
    fn walk(&self, g: &mut Generated, schema: &Value, path: &mut Vec<Seg>) {
        let field = display(path);
        for rule in schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            g.rules
                .push((self.kind, rule["message"].as_str().unwrap().to_string()));
        }
        if path.len() > 1 {
            g.fields.push(field.clone());
        }
        let wrong_type = match schema["type"].as_str() {
            Some("string") => json!(42),
            Some("integer") => json!("1"),
            Some("boolean") => json!("yes"),
            Some("array") => json!("x"),
            Some("object") => json!("x"),
            // int-or-string inside resources: not walked.
            _ => return,
        };
        if path.len() > 1 {
            self.case(g, path, "wrong type", wrong_type);
        }
        if KUBERNETES_TYPES.contains(&field.as_str()) {
            return;
        }
        match schema["type"].as_str().unwrap() {
            "string" => {
                let min_len = number(schema, "minLength").unwrap_or(0) as usize;
                if let Some(max) = number(schema, "maxLength") {
                    self.case(
                        g,
                        path,
                        "above maxLength",
                        json!("a".repeat(max as usize + 1)),
                    );
                }
                if min_len > 0 {
                    self.case(g, path, "below minLength", json!("a".repeat(min_len - 1)));
                }
                if let Some(p) = schema["pattern"].as_str() {
                    for v in violating(p, min_len) {
                        self.case(g, path, "violates pattern", json!(v));
                    }
                }
                if schema.get("enum").is_some() {
                    self.case(g, path, "not in enum", json!("Bogus"));
                }
            }
            "integer" => {
                self.case(g, path, "not an integer", json!(1.5));
                if let Some(min) = number(schema, "minimum") {
                    self.case(g, path, "below minimum", json!(min - 1));
                }
                if let Some(max) = number(schema, "maximum") {
                    self.case(g, path, "above maximum", json!(max + 1));
                }
            }
            "array" => {
                let (_, sample) = self.sample_at(path);
                let item = &sample[0];
                let keys: Vec<String> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect();
                if let Some(max) = number(schema, "maxItems") {
                    let items: Vec<Value> = (0..=max as usize)
                        .map(|i| distinct(item, i, &keys))
                        .collect();
                    self.case(g, path, "above maxItems", json!(items));
                }
                if let Some(min) = number(schema, "minItems").filter(|m| *m > 0) {
                    let items: Vec<Value> = (0..min as usize - 1)
                        .map(|i| distinct(item, i, &keys))
                        .collect();
                    self.case(g, path, "below minItems", json!(items));
                }
                if schema.get("x-kubernetes-list-type").is_some() {
                    self.case(g, path, "duplicate items", json!([item, item]));
                }
                path.push(Seg::Item);
                self.walk(g, &schema["items"], path);
                path.pop();
            }
            "object" => {
                if let Some(max) = number(schema, "maxProperties") {
                    let (_, sample) = self.sample_at(path);
                    let v = sample.as_object().and_then(|m| m.values().next()).cloned();
                    let v = v.unwrap_or(json!("v"));
                    let map: Map<String, Value> =
                        (0..=max).map(|i| (format!("k{i}"), v.clone())).collect();
                    self.case(g, path, "above maxProperties", Value::Object(map));
                }
                for required in schema["required"].as_array().into_iter().flatten() {
                    let key = required.as_str().unwrap();
                    path.push(Seg::Key(key.to_string()));
                    let field = display(path);
                    path.pop();
                    let spec = self.with(path, |slot| {
                        slot.as_object_mut().unwrap().remove(key);
                    });
                    g.cases.push(Case {
                        kind: self.kind,
                        names: vec![unindexed(&field)],
                        field,
                        what: "required, missing".into(),
                        spec,
                        name: None,
                    });
                }
                if let Some(props) = schema["properties"].as_object() {
                    for (k, prop) in props {
                        path.push(Seg::Key(k.clone()));
                        self.walk(g, prop, path);
                        path.pop();
                    }
                }
                if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                    path.push(Seg::Value);
                    self.walk(g, values, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn sample_at(&self, path: &[Seg]) -> (&Value, &Value) {
        let mut at = (&self.schema, &self.sample);
        for seg in path {
            at = step(at.0, at.1, seg);
        }
        at
    }
}

/// An EcrRegistry spec without spec.region (to set spec.regions instead).
fn without_region(spec: &Value) -> Value {
    let mut spec = spec.clone();
    spec.as_object_mut().unwrap().remove("region");
    spec
}

/// A value that breaks each CEL rule, found by its message; a rule without one
/// fails the test, so a new rule gets a case.
fn cel_cases(kind: Kind, message: &str, crd: &Crd, long_name: &str) -> Vec<Case> {
    let spec_with = |edit: &dyn Fn(&mut Value)| {
        let mut spec = crd.base.clone();
        edit(&mut spec);
        spec
    };
    let selector = |expr: Value| {
        spec_with(&|s| s["namespaces"]["selector"] = json!({"matchExpressions": [expr]}))
    };
    // An EcrRegistry's base without spec.region, then edited.
    let regions_with = |edit: &dyn Fn(&mut Value)| {
        let mut spec = without_region(&crd.base);
        edit(&mut spec);
        spec
    };
    let job = |template: Value| spec_with(&|s| s["jobTemplate"] = template.clone());
    let volume = |name: &str, mount: &str| {
        job(json!({"volumes": [{"name": name, "mountPath": mount, "configMap": {"name": "c"}}]}))
    };
    let field = message.split(':').next().unwrap().to_string();
    let specs: Vec<(Value, Option<String>)> = match (kind, field.as_str()) {
        (_, "metadata.name") => vec![(crd.base.clone(), Some(long_name.to_string()))],
        (Kind::Registry, "spec.namespaces.selector.matchExpressions[].operator") => vec![(
            selector(json!({"key": "team", "operator": "Equals", "values": ["a"]})),
            None,
        )],
        (Kind::Registry, "spec.namespaces.selector.matchExpressions[].values") => vec![
            (selector(json!({"key": "team", "operator": "In"})), None),
            (
                selector(json!({"key": "team", "operator": "Exists", "values": ["a"]})),
                None,
            ),
        ],
        // Each matches the pattern; only the rule refuses it.
        (Kind::Registry, "spec.refreshBefore") => ["", "1s", "12h", "11h1s"]
            .iter()
            .map(|v| (spec_with(&|s| s["refreshBefore"] = json!(v)), None))
            .collect(),
        // Two rules: no FIPS host in China, no dual-stack one in the ISO
        // partitions and aws-eusc; in spec.region and in any item of spec.regions.
        (Kind::Registry, "spec.endpoints") if message.contains("DualStack endpoints") => vec![
            (
                spec_with(&|s| {
                    s["region"] = json!("eusc-de-east-1");
                    s["endpoints"] = json!(["Standard", "DualStack"]);
                }),
                None,
            ),
            (
                regions_with(&|s| {
                    s["regions"] = json!(["us-east-1", "us-iso-east-1"]);
                    s["endpoints"] = json!(["Standard", "DualStack"]);
                }),
                None,
            ),
        ],
        (Kind::Registry, "spec.endpoints") => vec![
            (
                spec_with(&|s| {
                    s["region"] = json!("cn-north-1");
                    s["endpoints"] = json!(["Standard", "Fips"]);
                }),
                None,
            ),
            (
                regions_with(&|s| {
                    s["regions"] = json!(["eu-west-1", "cn-north-1"]);
                    s["endpoints"] = json!(["Fips"]);
                }),
                None,
            ),
        ],
        // Two rules: spec.region and spec.regions are exclusive, and one of
        // them (or spec.public) is needed.
        (Kind::Registry, "spec.regions") if message.contains("not both") => {
            vec![(spec_with(&|s| s["regions"] = json!(["eu-west-1"])), None)]
        }
        (Kind::Registry, "spec.regions") => vec![
            (regions_with(&|_| {}), None),
            (regions_with(&|s| s["public"] = json!(false)), None),
        ],
        // ECR Public only with regions of the aws partition.
        (Kind::Registry, "spec.public") => vec![
            (
                spec_with(&|s| {
                    s["region"] = json!("cn-north-1");
                    s["public"] = json!(true);
                }),
                None,
            ),
            (
                regions_with(&|s| {
                    s["regions"] = json!(["us-east-1", "us-gov-west-1"]);
                    s["public"] = json!(true);
                }),
                None,
            ),
        ],
        // webIdentity uses the ServiceAccounts' roles: no other source of credentials.
        (Kind::Registry, "spec.auth.webIdentity") => ["secretRef", "assumeRole", "namespaceRole"]
            .iter()
            .map(|other| {
                let value = match *other {
                    "secretRef" => json!({"name": "aws"}),
                    "assumeRole" => json!({"roleArn": "arn:aws:iam::123456789012:role/r"}),
                    _ => json!({}),
                };
                let auth = json!({"webIdentity": {"serviceAccount": "puller"}, *other: value});
                (spec_with(&|s| s["auth"] = auth.clone()), None)
            })
            .collect(),
        (Kind::Mirror, "spec.jobTemplate.podAnnotations") => vec![
            (
                job(json!({"podAnnotations": {"kubernetes.io/x": "y"}})),
                None,
            ),
            (job(json!({"podAnnotations": {"a.k8s.io/x": "y"}})), None),
        ],
        (Kind::Mirror, "spec.jobTemplate.podLabels") => vec![(
            job(json!({"podLabels": {"ecr-operator.io/mirror": "other"}})),
            None,
        )],
        (Kind::Mirror, "spec.jobTemplate.volumes[].name") => ["ecr", "other", "tmp"]
            .iter()
            .map(|n| (volume(n, "/etc/x"), None))
            .collect(),
        (Kind::Mirror, "spec.jobTemplate.volumes[].mountPath") => [
            "/tmp",
            "/tmp/x",
            "/var/run/ecr-operator/ecr",
            "/dev/termination-log",
        ]
        .iter()
        .map(|m| (volume("ca", m), None))
        .collect(),
        (Kind::Mirror, "spec") => {
            let pull = crd.base_pull.clone().unwrap()["pull"].clone();
            vec![
                (spec_with(&|s| s["pull"] = pull.clone()), None),
                (
                    spec_with(&|s| {
                        s.as_object_mut().unwrap().remove("push");
                    }),
                    None,
                ),
            ]
        }
        _ => panic!("no case for the {kind:?} rule {message:?}: add one here"),
    };
    specs
        .into_iter()
        .map(|(spec, name)| Case {
            kind,
            field: field.clone(),
            what: "breaks a CEL rule".into(),
            spec,
            name,
            names: vec![message.to_string()],
        })
        .collect()
}

/// Values the schema cannot refuse: inside Kubernetes' own types and label or
/// annotation keys, which the operator copies onto Secrets, Jobs and selectors.
/// Not here: a ConfigMap volume's name, which the Job API takes as any string
/// (the pod would wait for the ConfigMap; no kubelet runs here to report it).
fn unchecked_by_the_schema(registry: &Crd, mirror: &Crd) -> Vec<Case> {
    let bad_key = json!({"bad key!": "v"});
    let at = |crd: &Crd, field: &str, edit: &dyn Fn(&mut Value)| {
        let mut spec = crd.base.clone();
        edit(&mut spec);
        Case {
            kind: crd.kind,
            field: field.to_string(),
            what: "unchecked by the schema".into(),
            spec,
            name: None,
            names: vec![unindexed(field)],
        }
    };
    vec![
        // One identity serves one partition: the operator refuses regions of two.
        at(registry, "spec.regions", &|s| {
            s.as_object_mut().unwrap().remove("region");
            s["regions"] = json!(["eu-west-1", "cn-north-1"]);
        }),
        at(registry, "spec.secret.labels", &|s| {
            s["secret"] = json!({"labels": bad_key})
        }),
        at(registry, "spec.secret.labels", &|s| {
            s["secret"] = json!({"labels": {"team": "not a label value!"}})
        }),
        at(registry, "spec.secret.annotations", &|s| {
            s["secret"] = json!({"annotations": bad_key})
        }),
        at(registry, "spec.namespaces.selector.matchLabels", &|s| {
            s["namespaces"]["selector"] = json!({"matchLabels": bad_key})
        }),
        at(
            registry,
            "spec.namespaces.selector.matchExpressions[0].key",
            &|s| {
                s["namespaces"]["selector"] =
                    json!({"matchExpressions": [{"key": "bad key!", "operator": "Exists"}]})
            },
        ),
        at(mirror, "spec.schedule", &|s| {
            s["schedule"] = json!("61 * * * *")
        }),
        at(mirror, "spec.schedule", &|s| {
            s["schedule"] = json!("@fortnightly")
        }),
        at(mirror, "spec.jobTemplate.podLabels", &|s| {
            s["jobTemplate"] = json!({"podLabels": bad_key})
        }),
        at(mirror, "spec.jobTemplate.podLabels", &|s| {
            s["jobTemplate"] = json!({"podLabels": {"team": "not a label value!"}})
        }),
        at(mirror, "spec.jobTemplate.podAnnotations", &|s| {
            s["jobTemplate"] = json!({"podAnnotations": bad_key})
        }),
        at(mirror, "spec.jobTemplate.nodeSelector", &|s| {
            s["jobTemplate"] = json!({"nodeSelector": bad_key})
        }),
        at(mirror, "spec.jobTemplate.resources.limits", &|s| {
            s["jobTemplate"] = json!({"resources": {"limits": {"cpu": "lots"}}})
        }),
        at(
            mirror,
            "spec.jobTemplate.resources.requests",
            &|s| {
                s["jobTemplate"] = json!({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}})
            },
        ),
        at(mirror, "spec.jobTemplate.tolerations[0].operator", &|s| {
            s["jobTemplate"] = json!({"tolerations": [{"key": "a", "operator": "Sometimes"}]})
        }),
        at(
            mirror,
            "spec.jobTemplate.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
            &|s| s["jobTemplate"] = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Sometimes", "values": ["b"]}]}]}}}}),
        ),
        at(
            mirror,
            "spec.jobTemplate.volumes[0].configMap.items[0].path",
            &|s| s["jobTemplate"] = json!({"volumes": [{"name": "ca", "mountPath": "/etc/ca", "configMap": {"name": "c", "items": [{"key": "a", "path": "../escape"}]}}]}),
        ),
    ]
}

/// What the operator says of an accepted object: the Ready=False message, or
/// any condition's message once the phase is Failed.
fn reported(obj: &DynamicObject) -> Option<String> {
    let status = obj.data.get("status")?;
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let failed = status["phase"] == "Failed";
    let messages: Vec<String> = conditions
        .iter()
        .filter(|c| failed || (c["type"] == "Ready" && c["status"] == "False"))
        .filter_map(|c| c["message"].as_str().map(String::from))
        .collect();
    (!messages.is_empty()).then(|| messages.join(" | "))
}

/// Whether `message` names the case's field: its path, or (for a value inside
/// Kubernetes' own types, which the operator hands on) its key or the value.
fn names_field(case: &Case, message: &str) -> bool {
    let message = unindexed(message);
    case.names.iter().any(|n| message.contains(&unindexed(n)))
}

fn names_key_or_value(case: &Case, message: &str) -> bool {
    let key = unindexed(&case.field)
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let values = [
        "bad key!",
        "not a label value!",
        "lots",
        "Sometimes",
        "../escape",
        "61 * * * *",
        "@fortnightly",
    ];
    message.contains(&key)
        || values
            .iter()
            .any(|v| message.contains(v) && case.spec.to_string().contains(v))
}

#[tokio::test]
async fn every_field_of_both_crds_with_invalid_values_is_refused_or_reported() {
    let started = std::time::Instant::now();
    let bed = Bed::get();
    let names = TestNames::new("badin");
    let client = fixtures::setup(&names).await;
    let ns = names.ns("app");
    create_namespace(&client, &ns, &[]).await;
    let region = bed.var("AWS_REGION").to_string();
    let registry_name = names.ns("base");

    // EcrMirrors are served by the child too: the mirror controller runs with an image.
    let operator = Operator::start_with(
        bed,
        &names,
        bed.kubeconfig(),
        &[("ECR_OPERATOR_IMAGE", IMAGE)],
    );
    fixtures::create_registry_named(
        &client,
        &names,
        &registry_name,
        json!({
            "region": region, "namespaces": {"names": [ns]},
            "mirrors": {"namespaces": ["*"], "repositories": ["*"], "allowJobOverrides": true, "allowRepositoryPolicy": true},
        }),
    )
    .await;
    fixtures::wait_ready(&client, &registry_name, "True", None, 60).await;

    let registry = Crd {
        kind: Kind::Registry,
        schema: load_schema("ecrregistry.yaml"),
        sample: json!({"spec": {
            "region": "eu-west-1",
            "regions": ["eu-west-1"],
            "public": true,
            "registryIds": ["123456789012"],
            "endpoints": ["Standard"],
            "auth": {
                "secretRef": {"name": "ecr-credentials"},
                "assumeRole": {
                    "roleArn": "arn:aws:iam::123456789012:role/ecr-pull",
                    "externalId": "ext-1", "sessionName": "ecr-operator-test", "durationSeconds": 7200,
                    "via": {"roleArn": "arn:aws:iam::210987654321:role/hub", "externalId": "hub-ext", "sessionName": "hub"},
                },
                // Exclusive with the above in a real object; here only a source
                // of parents for the cases, each made on its own.
                "namespaceRole": {"unannotated": "NoSecret"},
                "webIdentity": {"serviceAccount": "ecr-puller"},
            },
            "secret": {"name": "ecr-pull", "labels": {"team": "a"}, "annotations": {"example.com/note": "managed"}},
            "namespaces": {"names": ["app"], "exclude": ["kube-system"], "selector": {"matchLabels": {"ecr": "yes"}}},
            "mirrors": {"namespaces": ["app"], "repositories": ["team-a/*"], "allowJobOverrides": false, "allowRepositoryPolicy": false},
            "serviceAccounts": ["default"],
            "refreshBefore": "1h30m",
        }}),
        base: json!({"region": region, "namespaces": {"names": [ns]}}),
        base_pull: None,
    };
    let mirror = Crd {
        kind: Kind::Mirror,
        schema: load_schema("ecrmirror.yaml"),
        sample: json!({"spec": {
            "registryRef": {"name": registry_name},
            "registryId": "123456789012",
            "schedule": "@daily",
            "suspend": false,
            "push": {
                "source": "docker.io/library/nginx:1", "sourcePullSecret": "ghcr",
                "repository": "mirror/app", "tags": ["v1"],
                "createRepository": {"imageTagMutability": "IMMUTABLE", "scanOnPush": true, "repositoryPolicy": "{}"},
            },
            "pull": {"source": "team/app:v1", "destination": "registry.example.com/app:v1", "destinationPushSecret": "push"},
            "jobTemplate": {
                "image": "example.com/ecr-operator:1", "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": {"cpu": "50m"}},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                "affinity": {},
                "serviceAccountName": "mirror", "backoffLimit": 1, "ttlSecondsAfterFinished": 3600,
                "activeDeadlineSeconds": 600,
                "podLabels": {"team": "a"}, "podAnnotations": {"example.com/note": "x"},
                "env": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"}],
                "volumes": [{"name": "ca", "mountPath": "/etc/corp-ca", "configMap": {"name": "corp-ca"}}],
            },
        }}),
        base: json!({
            "registryRef": {"name": registry_name},
            "push": {"source": "docker.io/library/nginx:1", "repository": format!("mirror/{}", names.id), "tags": ["1"]},
        }),
        base_pull: Some(json!({
            "registryRef": {"name": registry_name},
            "pull": {"source": format!("mirror/{}:1", names.id), "destination": "registry.example.com/app:v1"},
        })),
    };

    // Generate: every field, every CEL rule, then what the schema cannot check.
    let mut g = Generated::default();
    for crd in [&registry, &mirror] {
        g.rules.extend(
            crd.schema["x-kubernetes-validations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| (crd.kind, r["message"].as_str().unwrap().to_string())),
        );
        let mut path = vec![Seg::Key("spec".into())];
        crd.walk(&mut g, &crd.schema["properties"]["spec"], &mut path);
    }
    let long_name = format!("{}-{}", names.id, "x".repeat(64));
    let rules = std::mem::take(&mut g.rules);
    for (kind, message) in &rules {
        let crd = if *kind == Kind::Registry {
            &registry
        } else {
            &mirror
        };
        g.cases.extend(cel_cases(*kind, message, crd, &long_name));
    }
    g.cases.extend(unchecked_by_the_schema(&registry, &mirror));

    // Create every case.
    let registries: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<EcrRegistry>(&()));
    let mirrors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<EcrMirror>(&()));
    let mut refused = 0;
    let mut accepted: Vec<(usize, String)> = Vec::new();
    let mut findings: Vec<String> = Vec::new();
    for (i, case) in g.cases.iter().enumerate() {
        let (api, ar, name) = match case.kind {
            Kind::Registry => (
                &registries,
                ApiResource::erase::<EcrRegistry>(&()),
                names.ns(&format!("r{i}")),
            ),
            Kind::Mirror => (
                &mirrors,
                ApiResource::erase::<EcrMirror>(&()),
                format!("m{i}"),
            ),
        };
        let name = case.name.clone().unwrap_or(name);
        let mut obj = DynamicObject::new(&name, &ar).data(json!({ "spec": case.spec }));
        // This test's operator serves the EcrRegistries of its label (and their EcrMirrors).
        if case.kind == Kind::Registry {
            obj.metadata.labels = Some([("test".to_string(), names.id.clone())].into());
        }
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(s)) if s.code == 422 && names_field(case, &s.message) => {
                refused += 1;
            }
            Err(kube::Error::Api(s)) => findings.push(format!(
                "{:?} {} ({}): refused without naming {:?}: {} {}",
                case.kind, case.field, case.what, case.names, s.code, s.message
            )),
            Err(e) => panic!("create {name}: {e}"),
            Ok(_) => accepted.push((i, name)),
        }
    }

    // What was accepted must be reported by the operator, naming the field.
    let mut reported_in_status = 0;
    let mut weak = Vec::new();
    let mut waiting = accepted.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last: std::collections::HashMap<usize, String> = Default::default();
    while !waiting.is_empty() && std::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for (i, name) in waiting {
            let case = &g.cases[i];
            let api = if case.kind == Kind::Registry {
                &registries
            } else {
                &mirrors
            };
            let obj = api.get(&name).await.expect("get an accepted case");
            let message = reported(&obj);
            match message {
                Some(m) if names_field(case, &m) => reported_in_status += 1,
                Some(m) if names_key_or_value(case, &m) => {
                    reported_in_status += 1;
                    weak.push(format!(
                        "{:?} {} ({}): {m}",
                        case.kind, case.field, case.what
                    ));
                }
                _ => {
                    last.insert(i, serde_json::to_string(&obj.data.get("status")).unwrap());
                    still.push((i, name));
                }
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    for (i, name) in &waiting {
        let case = &g.cases[*i];
        findings.push(format!(
            "{:?} {name} {} ({}): accepted, not reported naming it; spec {}; status {}",
            case.kind, case.field, case.what, case.spec, last[i]
        ));
    }
    for line in &weak {
        println!("reported, naming the key or value only: {line}");
    }

    // No crash: the process serves /healthz and no task panicked.
    let (code, _) = operator.admin_get("/healthz").await;
    assert_eq!(code, 200, "the operator's /healthz after the bad input");
    assert!(
        !operator.logs().contains("panicked"),
        "a task of the operator panicked"
    );

    // Nothing blocks deletion (the EcrRegistry finalizer included).
    let mut gone: Vec<(Kind, String)> = accepted
        .iter()
        .map(|(i, name)| (g.cases[*i].kind, name.clone()))
        .collect();
    gone.push((Kind::Registry, registry_name.clone()));
    for (kind, name) in &gone {
        let api = if *kind == Kind::Registry {
            &registries
        } else {
            &mirrors
        };
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete a case");
    }
    eventually(30, "every accepted case to be deleted", || async {
        for (kind, name) in &gone {
            let api = if *kind == Kind::Registry {
                &registries
            } else {
                &mirrors
            };
            if api.get_opt(name).await.expect("get").is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    let (code, _) = operator.admin_get("/healthz").await;
    assert_eq!(code, 200, "the operator's /healthz after the deletions");
    delete_namespace(&client, &ns).await;
    delete_namespace(&client, &names.ns("op")).await;

    println!(
        "FIGURE bad_input fields={} cases={} refused_at_admission={refused} reported_in_status={reported_in_status} unreported={} seconds={}",
        g.fields.len(),
        g.cases.len(),
        findings.len(),
        started.elapsed().as_secs()
    );
    assert!(
        findings.is_empty(),
        "bad input neither refused nor reported naming the field:\n{}",
        findings.join("\n")
    );
}

//! Typed params: one struct per kind is the single definition of its params' names, types,
//! defaults, allowed values, ranges and docs.
//!
//! A params struct derives `Serialize`, `Deserialize` and `schemars::JsonSchema`, has
//! `#[serde(default, deny_unknown_fields)]` and a `Default` impl (the defaults), and a doc comment
//! on every field. [`ParamsSchema::of`] reads the generated JSON schema into [`ParamDoc`]s, which
//! the engine uses to check each value as it is loaded and to print `nasflow params`; serde then
//! builds the struct, and serializing it back gives the canonical params that go into the stage
//! key (defaults filled in, `lr = 1` stored as `1.0`).
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::suggest::did_you_mean;

/// What a kind's params struct must be (implemented for every such type).
pub trait Params:
    Serialize + DeserializeOwned + JsonSchema + Default + Send + Sync + 'static
{
}
impl<T: Serialize + DeserializeOwned + JsonSchema + Default + Send + Sync + 'static> Params for T {}

/// Schema extension marking a param that is passed to the run but not part of the key.
pub const UNKEYED: &str = "x-nasflow-unkeyed";
/// Schema extension marking a string param whose value names one of the stage's deps (the
/// engine checks it when it reads pipeline.toml).
pub const NAMES_DEP: &str = "x-nasflow-dep";
const PATH: &str = "x-nasflow-path";
const KEYWORDS: &str = "x-nasflow-keywords";

/// A path param written `@STAGE/PATH` names PATH inside the outputs of STAGE, an upstream
/// stage listed in `deps` (a fetched file): the engine keys it by that stage's output digest,
/// as any upstream, and hands the run the absolute path inside that stage's outputs.
pub fn upstream_path(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix('@')?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// The type of a param, as the engine checks it and `nasflow params` prints it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamType {
    Integer,
    /// An integer literal is accepted and stored as a float (`lr = 1` is `1.0`).
    Float,
    Bool,
    String,
    /// A file or directory relative to the pipeline file (`""` for none), or one of `keywords`
    /// (which name no file). Its content is part of the key; the run sees an absolute path.
    Path {
        keywords: Vec<String>,
    },
    /// One of these strings.
    Choice(Vec<Choice>),
    List(Box<ParamType>),
    Table,
    Any,
}

/// One allowed value of a [`ParamType::Choice`], with its doc.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub value: String,
    pub doc: String,
}

/// A range end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub exclusive: bool,
}

/// One declared param.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDoc {
    pub name: String,
    pub ty: ParamType,
    pub default: Value,
    /// For numbers, or a list's numbers.
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    pub doc: String,
    /// Whether the value is part of the stage key (see [`UNKEYED`]).
    pub keyed: bool,
    /// Whether the value names one of the stage's deps (see [`NAMES_DEP`]).
    pub names_dep: bool,
}

/// A kind's params, in declaration order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamsSchema {
    pub params: Vec<ParamDoc>,
}

/// A param value that does not fit its declaration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown param `{name}`")]
    Unknown {
        name: String,
        known: Vec<String>,
        help: Option<String>,
    },
    /// `at` (the param, or an element of it: `regressors[1]`) `problem` ("must be ..., not ...").
    #[error("`{at}` {problem}")]
    Invalid {
        name: String,
        at: String,
        problem: String,
        help: Option<String>,
    },
}

impl ParamError {
    /// The top-level param the error is about.
    pub fn name(&self) -> &str {
        match self {
            ParamError::Unknown { name, .. } | ParamError::Invalid { name, .. } => name,
        }
    }
    pub fn help(&self) -> Option<&str> {
        match self {
            ParamError::Unknown { help, .. } | ParamError::Invalid { help, .. } => help.as_deref(),
        }
    }
}

impl ParamsSchema {
    /// The schema of a params struct.
    pub fn of<P: Params>() -> ParamsSchema {
        let schema = schemars::schema_for!(P);
        let root = schema.as_value();
        let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
        let props = root.get("properties").and_then(Value::as_object);
        let mut params: Vec<ParamDoc> = props
            .into_iter()
            .flatten()
            .map(|(name, prop)| doc_of(name, prop, &defs))
            .collect();
        let order = declaration_order(&P::default());
        params.sort_by_key(|p| order.iter().position(|n| *n == p.name));
        ParamsSchema { params }
    }

    pub fn get(&self, name: &str) -> Option<&ParamDoc> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    /// Checks raw values (as read from TOML) against the declarations, before serde builds `P`.
    pub fn check(&self, raw: &Map<String, Value>) -> Result<(), ParamError> {
        for (name, value) in raw {
            let Some(doc) = self.get(name) else {
                return Err(ParamError::Unknown {
                    name: name.clone(),
                    known: self.names().iter().map(|s| s.to_string()).collect(),
                    help: did_you_mean(name, &self.names()),
                });
            };
            check_value(doc, &doc.ty, name, value).map_err(|(at, problem, help)| {
                ParamError::Invalid {
                    name: name.clone(),
                    at,
                    problem,
                    help: help.or_else(|| Some(format!("{name}: {}", doc.doc))),
                }
            })?;
        }
        Ok(())
    }
}

/// The error of a check across params (a `try_from` on the whole struct, or `Kind::check`): its
/// message names the param it is about by starting with "NAME: ".
pub fn cross_param_error(schema: &ParamsSchema, problem: String) -> ParamError {
    let (name, problem) = match problem.split_once(": ") {
        Some((name, rest)) if schema.get(name).is_some() => (name.to_string(), rest.to_string()),
        _ => (".".to_string(), problem),
    };
    ParamError::Invalid {
        problem: format!("is not valid: {problem}"),
        help: schema.get(&name).map(|d| format!("{name}: {}", d.doc)),
        at: name.clone(),
        name: name.split(['.', '[']).next().unwrap_or("").to_string(),
    }
}

/// Checks raw values and returns the canonical params: every param, defaults filled in, in
/// the form `P` serializes to.
pub fn validate<P: Params>(
    schema: &ParamsSchema,
    raw: &Map<String, Value>,
) -> Result<(P, Map<String, Value>), ParamError> {
    schema.check(raw)?;
    let p: P = serde_path_to_error::deserialize(Value::Object(raw.clone())).map_err(|e| {
        let path = e.path().to_string();
        let problem = e.inner().to_string();
        // A check across params (a `try_from` on the whole struct) has no path.
        if path == "." || path.is_empty() {
            return cross_param_error(schema, problem);
        }
        let name = path.split(['.', '[']).next().unwrap_or("").to_string();
        ParamError::Invalid {
            problem: format!("is not valid: {problem}"),
            help: schema.get(&name).map(|d| format!("{name}: {}", d.doc)),
            at: path,
            name,
        }
    })?;
    let canonical = match serde_json::to_value(&p) {
        Ok(Value::Object(m)) => m,
        _ => unreachable!("a params struct serializes to an object"),
    };
    Ok((p, canonical))
}

fn resolve<'a>(prop: &'a Value, defs: &'a Value) -> &'a Value {
    prop.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
        .unwrap_or(prop)
}

fn doc_of(name: &str, prop: &Value, defs: &Value) -> ParamDoc {
    let (ty, bounds) = type_of(prop, defs);
    let doc = prop
        .get("description")
        .or_else(|| resolve(prop, defs).get("description"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .replace('\n', " ");
    ParamDoc {
        name: name.to_string(),
        ty,
        default: prop.get("default").cloned().unwrap_or(Value::Null),
        min: bounds.0,
        max: bounds.1,
        doc,
        keyed: prop.get(UNKEYED) != Some(&Value::Bool(true)),
        names_dep: prop.get(NAMES_DEP) == Some(&Value::Bool(true)),
    }
}

type Bounds = (Option<Bound>, Option<Bound>);

fn type_of(prop: &Value, defs: &Value) -> (ParamType, Bounds) {
    let s = resolve(prop, defs);
    if s.get(PATH) == Some(&Value::Bool(true)) {
        let keywords = s
            .get(KEYWORDS)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        return (ParamType::Path { keywords }, (None, None));
    }
    if let Some(choices) = choices(s) {
        return (ParamType::Choice(choices), (None, None));
    }
    let ty = match s.get("type") {
        Some(Value::Array(a)) => a.iter().find(|t| *t != "null").cloned(),
        other => other.cloned(),
    };
    let bound = |lo: &str, ex: &str| {
        let get = |k: &str| s.get(k).and_then(Value::as_f64);
        get(ex)
            .map(|value| Bound {
                value,
                exclusive: true,
            })
            .or_else(|| {
                get(lo).map(|value| Bound {
                    value,
                    exclusive: false,
                })
            })
    };
    let bounds = (
        bound("minimum", "exclusiveMinimum"),
        bound("maximum", "exclusiveMaximum"),
    );
    match ty.as_ref().and_then(Value::as_str) {
        Some("integer") => (ParamType::Integer, bounds),
        Some("number") => (ParamType::Float, bounds),
        Some("boolean") => (ParamType::Bool, (None, None)),
        Some("string") => (ParamType::String, (None, None)),
        Some("object") => (ParamType::Table, (None, None)),
        Some("array") => {
            let items = s.get("items").cloned().unwrap_or(Value::Null);
            let (inner, b) = type_of(&items, defs);
            (ParamType::List(Box::new(inner)), b)
        }
        _ => (ParamType::Any, (None, None)),
    }
}

/// The allowed values of a unit enum: `oneOf` of `const`s (with docs) or a plain `enum`.
fn choices(s: &Value) -> Option<Vec<Choice>> {
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(|v| {
                Some(Choice {
                    value: v.as_str()?.to_string(),
                    doc: String::new(),
                })
            })
            .collect();
    }
    s.get("oneOf")?
        .as_array()?
        .iter()
        .map(|v| {
            Some(Choice {
                value: v.get("const")?.as_str()?.to_string(),
                doc: v
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect()
}

/// The field names of a params struct in declaration order: serde writes fields in that order
/// (a `Map` would sort them), so they are read back from the serialized text.
fn declaration_order<P: Serialize>(p: &P) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::to_string(p)
        .ok()
        .and_then(|t| serde_json::from_str::<Keys>(&t).ok())
        .map(|k| k.0)
        .unwrap_or_default()
}

/// Where (`regressors[1]`), what is wrong ("must be ..., not ..."), and a fix.
type Mismatch = (String, String, Option<String>);

fn check_value(doc: &ParamDoc, ty: &ParamType, at: &str, v: &Value) -> Result<(), Mismatch> {
    let wrong = || {
        (
            at.to_string(),
            format!("must be {}, not {}", describe(ty, doc), found(v)),
            None,
        )
    };
    match ty {
        ParamType::Any => Ok(()),
        ParamType::Bool if v.is_boolean() => Ok(()),
        ParamType::String | ParamType::Path { .. } if v.is_string() => Ok(()),
        ParamType::Table if v.is_object() => Ok(()),
        ParamType::Integer if v.is_i64() || v.is_u64() => in_range(doc, ty, at, v),
        ParamType::Float if v.is_number() => in_range(doc, ty, at, v),
        ParamType::Choice(c) => {
            let s = v.as_str().ok_or_else(wrong)?;
            let names: Vec<&str> = c.iter().map(|c| c.value.as_str()).collect();
            if names.contains(&s) {
                return Ok(());
            }
            Err((
                at.to_string(),
                format!("must be {}, not \"{s}\"", describe(ty, doc)),
                did_you_mean(s, &names),
            ))
        }
        ParamType::List(inner) => {
            let a = v.as_array().ok_or_else(wrong)?;
            a.iter()
                .enumerate()
                .try_for_each(|(i, x)| check_value(doc, inner, &format!("{at}[{i}]"), x))
        }
        _ => Err(wrong()),
    }
}

fn in_range(doc: &ParamDoc, ty: &ParamType, at: &str, v: &Value) -> Result<(), Mismatch> {
    let x = v.as_f64().unwrap_or(f64::NAN);
    let below = doc
        .min
        .is_some_and(|b| x < b.value || (b.exclusive && x == b.value));
    let above = doc
        .max
        .is_some_and(|b| x > b.value || (b.exclusive && x == b.value));
    if below || above {
        return Err((
            at.to_string(),
            format!("must be {}, not {v}", describe(ty, doc)),
            None,
        ));
    }
    Ok(())
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// `>= 1`, `in [0, 1)`, or nothing.
pub fn range(doc: &ParamDoc) -> String {
    match (doc.min, doc.max) {
        (Some(lo), Some(hi)) => format!(
            "in {}{}, {}{}",
            if lo.exclusive { "(" } else { "[" },
            num(lo.value),
            num(hi.value),
            if hi.exclusive { ")" } else { "]" }
        ),
        (Some(lo), None) => format!(
            "{} {}",
            if lo.exclusive { ">" } else { ">=" },
            num(lo.value)
        ),
        (None, Some(hi)) => format!(
            "{} {}",
            if hi.exclusive { "<" } else { "<=" },
            num(hi.value)
        ),
        (None, None) => String::new(),
    }
}

/// "an integer >= 1", "one of \"io\", \"arch2vec\"", "a list of floats".
pub fn describe(ty: &ParamType, doc: &ParamDoc) -> String {
    let r = range(doc);
    let with_range = |s: &str| {
        if r.is_empty() {
            s.to_string()
        } else {
            format!("{s} {r}")
        }
    };
    match ty {
        ParamType::Integer => with_range("an integer"),
        ParamType::Float => with_range("a number"),
        ParamType::Bool => "true or false".into(),
        ParamType::String => "a string".into(),
        ParamType::Path { keywords } if keywords.is_empty() => "a path (string)".into(),
        ParamType::Path { keywords } => format!(
            "a path or {}",
            keywords
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        ParamType::Choice(c) => format!(
            "one of {}",
            c.iter()
                .map(|c| format!("\"{}\"", c.value))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ParamType::List(inner) => format!("a list of {}", plural(&describe(inner, doc))),
        ParamType::Table => "a table".into(),
        ParamType::Any => "any value".into(),
    }
}

fn plural(one: &str) -> String {
    let s = one
        .strip_prefix("an ")
        .or_else(|| one.strip_prefix("a "))
        .unwrap_or(one);
    match s.split_once(' ') {
        Some((noun, rest)) if !noun.ends_with('s') => format!("{noun}s {rest}"),
        None if !s.ends_with('s') && !s.starts_with("one of") => format!("{s}s"),
        _ => s.to_string(),
    }
}

fn found(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) if n.is_f64() => format!("the float {n}"),
        Value::Number(n) => format!("the integer {n}"),
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
    }
}

/// A file or directory param, relative to the pipeline file; `""` for none. The engine hashes
/// its content into the key and hands the run an absolute path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PathParam(String);

impl PathParam {
    pub fn new(s: impl Into<String>) -> Self {
        PathParam(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `None` when empty.
    pub fn path(&self) -> Option<&Path> {
        (!self.0.is_empty()).then(|| Path::new(&self.0))
    }
}

impl JsonSchema for PathParam {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Path".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", PATH: true})
    }
}

/// The keywords a [`PathOr`] accepts instead of a path.
pub trait Keywords: 'static {
    const KEYWORDS: &'static [&'static str];
}

/// A path param that may instead be one of `K`'s keywords (`images = "synthetic"`).
pub struct PathOr<K>(String, PhantomData<fn() -> K>);

impl<K: Keywords> PathOr<K> {
    pub fn new(s: impl Into<String>) -> Self {
        PathOr(s.into(), PhantomData)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The keyword given, if the value is one.
    pub fn keyword(&self) -> Option<&'static str> {
        K::KEYWORDS.iter().copied().find(|k| *k == self.0)
    }
    /// The path given: `None` for a keyword or `""`.
    pub fn path(&self) -> Option<&Path> {
        (self.keyword().is_none() && !self.0.is_empty()).then(|| Path::new(&self.0))
    }
}

impl<K: Keywords> Default for PathOr<K> {
    fn default() -> Self {
        PathOr::new(K::KEYWORDS.first().copied().unwrap_or(""))
    }
}
impl<K> Clone for PathOr<K> {
    fn clone(&self) -> Self {
        PathOr(self.0.clone(), PhantomData)
    }
}
impl<K> fmt::Debug for PathOr<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl<K> PartialEq for PathOr<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K> Serialize for PathOr<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de, K> Deserialize<'de> for PathOr<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PathOr(String::deserialize(d)?, PhantomData))
    }
}
impl<K: Keywords> JsonSchema for PathOr<K> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("PathOr_{}", K::KEYWORDS.join("_")).into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", PATH: true, KEYWORDS: K::KEYWORDS})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Synthetic;
    impl Keywords for Synthetic {
        const KEYWORDS: &'static [&'static str] = &["synthetic"];
    }

    #[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Model {
        /// the input-output model
        Io,
        /// the plain VAE
        Arch2vec,
    }

    /// Params of a test kind.
    #[derive(Serialize, Deserialize, JsonSchema, Debug)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        /// which model
        model: Model,
        /// training epochs
        #[schemars(range(min = 1))]
        epochs: usize,
        /// a fraction
        #[schemars(range(min = 0.0, max = 1.0))]
        fraction: f64,
        /// models to compare
        models: Vec<Model>,
        /// the images
        images: PathOr<Synthetic>,
        /// where to download from
        #[schemars(extend("x-nasflow-unkeyed" = true))]
        url: String,
        /// the upstream stage to read
        #[schemars(extend("x-nasflow-dep" = true))]
        from: String,
    }

    impl Default for Example {
        fn default() -> Self {
            Example {
                model: Model::Io,
                epochs: 30,
                fraction: 0.1,
                models: vec![Model::Io],
                images: PathOr::default(),
                url: String::new(),
                from: "up".into(),
            }
        }
    }

    fn raw(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_schema_is_read_in_declaration_order_with_docs_defaults_and_ranges() {
        let s = ParamsSchema::of::<Example>();
        assert_eq!(
            s.names(),
            ["model", "epochs", "fraction", "models", "images", "url", "from"]
        );
        let model = s.get("model").unwrap();
        assert_eq!(model.doc, "which model");
        assert_eq!(model.default, json!("io"));
        let ParamType::Choice(c) = &model.ty else {
            panic!("{:?}", model.ty)
        };
        assert_eq!(c[1].value, "arch2vec");
        assert_eq!(c[1].doc, "the plain VAE");
        let epochs = s.get("epochs").unwrap();
        assert_eq!(
            (epochs.ty.clone(), epochs.min.map(|b| b.value)),
            (ParamType::Integer, Some(1.0))
        );
        assert_eq!(describe(&epochs.ty, epochs), "an integer >= 1");
        let f = s.get("fraction").unwrap();
        assert_eq!(describe(&f.ty, f), "a number in [0, 1]");
        assert!(
            matches!(&s.get("models").unwrap().ty, ParamType::List(inner) if matches!(**inner, ParamType::Choice(_)))
        );
        assert_eq!(
            s.get("images").unwrap().ty,
            ParamType::Path {
                keywords: vec!["synthetic".into()]
            }
        );
        assert!(s.get("epochs").unwrap().keyed && !s.get("url").unwrap().keyed);
        assert!(s.get("from").unwrap().names_dep && !s.get("url").unwrap().names_dep);
    }

    #[test]
    fn values_are_checked_with_the_fix_named() {
        let s = ParamsSchema::of::<Example>();
        let err = |v: Value| validate::<Example>(&s, &raw(v)).unwrap_err();
        let e = err(json!({"model": "arch2vc"}));
        assert_eq!(e.name(), "model");
        assert_eq!(
            e.to_string(),
            "`model` must be one of \"io\", \"arch2vec\", not \"arch2vc\""
        );
        assert_eq!(e.help(), Some("did you mean `arch2vec`?"));
        let e = err(json!({"models": ["io", "svm"]}));
        assert_eq!(
            (e.name(), e.to_string().as_str()),
            (
                "models",
                "`models[1]` must be one of \"io\", \"arch2vec\", not \"svm\""
            )
        );
        let e = err(json!({"epochs": -5}));
        assert_eq!(e.to_string(), "`epochs` must be an integer >= 1, not -5");
        assert!(err(json!({"epochs": 2.5}))
            .to_string()
            .contains("not the float 2.5"));
        assert!(err(json!({"fraction": 1.5}))
            .to_string()
            .contains("in [0, 1]"));
        let e = err(json!({"epoch": 3}));
        assert!(matches!(&e, ParamError::Unknown { .. }));
        assert_eq!(e.help(), Some("did you mean `epochs`?"));
    }

    #[test]
    fn canonical_params_fill_defaults_and_store_floats_as_floats() {
        let s = ParamsSchema::of::<Example>();
        let (p, canon) =
            validate::<Example>(&s, &raw(json!({"fraction": 1, "models": []}))).unwrap();
        assert_eq!(p.fraction, 1.0);
        assert_eq!(canon["fraction"], json!(1.0));
        assert!(canon["fraction"].is_f64());
        assert_eq!(canon["epochs"], json!(30));
        assert_eq!(canon["images"], json!("synthetic"));
        assert_eq!(p.images.keyword(), Some("synthetic"));
        assert_eq!(
            PathOr::<Synthetic>::new("/data/cifar").path(),
            Some(Path::new("/data/cifar"))
        );
        assert_eq!(PathParam::default().path(), None);
    }
}

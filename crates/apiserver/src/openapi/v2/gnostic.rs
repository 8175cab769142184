//! The gnostic `openapi.v2` protobuf messages that carry a Swagger 2.0 document (gnostic's
//! `openapiv2/OpenAPIv2.proto`, the `openapi_v2.Document` that client-go and kubectl decode),
//! and their conversion from the document's JSON.
//!
//! No maintained crate provides these messages, so they are declared here with `prost`'s
//! derive, with gnostic's field numbers. Only the messages and fields a Kubernetes document
//! uses are declared; the conversion refuses any JSON it cannot carry, so the protobuf form
//! never silently loses what the JSON form says.
//!
//! # Caveats
//!
//! Parameters are only `body`, `query` and `path` ones, and operations have no `security`;
//! the document coracle serves needs no more.

use serde_json::{Map, Value};

/// A value gnostic keeps as YAML text (extension values, `default`, `enum`, `example`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// The value as YAML (JSON is written as YAML's flow style).
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// One entry of a map of [`Any`], such as a vendor extension (`x-kubernetes-…`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    /// The key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// The whole Swagger 2.0 document.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    /// Always `2.0`.
    #[prost(string, tag = "1")]
    pub swagger: String,
    /// Title and version.
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    /// The media types every operation consumes.
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    /// The media types every operation produces.
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    /// The operations by URL.
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    /// The schemas by name (`io.k8s.api.core.v1.Pod`).
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The API's title and version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    /// The title.
    #[prost(string, tag = "1")]
    pub title: String,
    /// The version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// A description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The operations by URL.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    /// Vendor extensions.
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    /// One entry per URL.
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// One URL and its operations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    /// The URL (`/api/v1/namespaces/{namespace}/pods/{name}`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its operations.
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

/// The operations of one URL, by method.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    /// GET.
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    /// PUT.
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    /// POST.
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    /// DELETE.
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    /// PATCH.
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    /// Parameters shared by the operations.
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// One operation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// Tags.
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    /// A description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// A unique name.
    #[prost(string, tag = "5")]
    pub operation_id: String,
    /// The media types it answers with.
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    /// The media types it reads.
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    /// Its parameters.
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    /// Its responses by code.
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    /// URL schemes.
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    /// Vendor extensions (`x-kubernetes-group-version-kind`, `x-kubernetes-action`).
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A parameter (gnostic also allows a reference here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    /// The parameter.
    #[prost(oneof = "parameters_item::Oneof", tags = "1")]
    pub oneof: Option<parameters_item::Oneof>,
}

/// The variants of [`ParametersItem`].
pub mod parameters_item {
    /// A parameter given in place.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        /// The parameter.
        #[prost(message, tag = "1")]
        Parameter(super::Parameter),
    }
}

/// A body or non-body parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    /// Which kind.
    #[prost(oneof = "parameter::Oneof", tags = "1, 2")]
    pub oneof: Option<parameter::Oneof>,
}

/// The variants of [`Parameter`].
pub mod parameter {
    /// Body or not.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        /// The request body.
        #[prost(message, tag = "1")]
        BodyParameter(Box<super::BodyParameter>),
        /// A query, path, header or form parameter.
        #[prost(message, tag = "2")]
        NonBodyParameter(super::NonBodyParameter),
    }
}

/// The request body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    /// A description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// Its name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Always `body`.
    #[prost(string, tag = "3")]
    pub r#in: String,
    /// Whether it must be given.
    #[prost(bool, tag = "4")]
    pub required: bool,
    /// Its schema.
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A parameter outside the body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    /// Where it goes.
    #[prost(oneof = "non_body_parameter::Oneof", tags = "3, 4")]
    pub oneof: Option<non_body_parameter::Oneof>,
}

/// The variants of [`NonBodyParameter`] coracle uses.
pub mod non_body_parameter {
    /// Where the parameter goes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        /// In the query string.
        #[prost(message, tag = "3")]
        QueryParameterSubSchema(super::SimpleParameter),
        /// In the URL's path.
        #[prost(message, tag = "4")]
        PathParameterSubSchema(super::PathParameter),
    }
}

/// A query parameter (gnostic's `QueryParameterSubSchema`, the fields coracle uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleParameter {
    /// Whether it must be given.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// Always `query`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// A description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Its name (`fieldValidation`).
    #[prost(string, tag = "4")]
    pub name: String,
    /// Its type.
    #[prost(string, tag = "6")]
    pub r#type: String,
    /// Its format.
    #[prost(string, tag = "7")]
    pub format: String,
    /// `uniqueItems`.
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "23")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A path parameter (gnostic's `PathParameterSubSchema`, the fields coracle uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathParameter {
    /// Whether it must be given.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// Always `path`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// A description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Its name (`namespace`).
    #[prost(string, tag = "4")]
    pub name: String,
    /// Its type.
    #[prost(string, tag = "5")]
    pub r#type: String,
    /// Its format.
    #[prost(string, tag = "6")]
    pub format: String,
    /// `uniqueItems`.
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "22")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The responses of an operation by code.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    /// One per code.
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A code and its response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    /// The code (`200`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The response.
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// A response (gnostic also allows a reference here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    /// The response.
    #[prost(oneof = "response_value::Oneof", tags = "1")]
    pub oneof: Option<response_value::Oneof>,
}

/// The variants of [`ResponseValue`].
pub mod response_value {
    /// A response given in place.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        /// The response.
        #[prost(message, tag = "1")]
        Response(super::Response),
    }
}

/// One response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// A description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// The body's schema.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    /// Vendor extensions.
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A response body's schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    /// The schema.
    #[prost(oneof = "schema_item::Oneof", tags = "1")]
    pub oneof: Option<schema_item::Oneof>,
}

/// The variants of [`SchemaItem`].
pub mod schema_item {
    /// A schema.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        /// The schema.
        #[prost(message, tag = "1")]
        Schema(super::Schema),
    }
}

/// The schemas by name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    /// One per name.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// A name and its schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The schema.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// A schema's properties by name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    /// One per property.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// A schema's types (one, in Kubernetes documents).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    /// The types.
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// An array schema's item schemas (one, in Kubernetes documents).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    /// The schemas.
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// A map schema's values: a schema, or whether any are allowed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    /// Schema or boolean.
    #[prost(oneof = "additional_properties_item::Oneof", tags = "1, 2")]
    pub oneof: Option<additional_properties_item::Oneof>,
}

/// The variants of [`AdditionalPropertiesItem`].
pub mod additional_properties_item {
    /// Schema or boolean.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        /// The values' schema.
        #[prost(message, tag = "1")]
        Schema(Box<super::Schema>),
        /// Whether any values are allowed.
        #[prost(bool, tag = "2")]
        Boolean(bool),
    }
}

/// A JSON schema as Swagger 2.0 restricts it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    /// `$ref`.
    #[prost(string, tag = "1")]
    pub r#ref: String,
    /// `format`.
    #[prost(string, tag = "2")]
    pub format: String,
    /// `title`.
    #[prost(string, tag = "3")]
    pub title: String,
    /// `description`.
    #[prost(string, tag = "4")]
    pub description: String,
    /// `default`.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    /// `maximum`.
    #[prost(double, tag = "7")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "9")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "13")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    /// `maxProperties`.
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    /// `minProperties`.
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    /// `required`.
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    /// `enum`.
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    /// `additionalProperties`.
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    /// `type`.
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    /// `items`.
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    /// `allOf`.
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    /// `properties`.
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    /// `readOnly`.
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    /// `example`.
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    /// Vendor extensions (`x-kubernetes-group-version-kind`, `x-kubernetes-patch-strategy`).
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A part of the JSON document that the messages have no field for.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what} has no place in openapi_v2.Document")]
pub struct ConversionError {
    /// Where in the document (`definitions.io.k8s.api.core.v1.Pod.properties.spec`).
    pub path: String,
    /// What was found there.
    pub what: String,
}

type Result<T> = std::result::Result<T, ConversionError>;

fn refuse<T>(path: &str, what: impl std::fmt::Display) -> Result<T> {
    Err(ConversionError {
        path: path.to_owned(),
        what: what.to_string(),
    })
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().map_or_else(|| refuse(path, value), Ok)
}

fn string(value: &Value, path: &str) -> Result<String> {
    value
        .as_str()
        .map_or_else(|| refuse(path, value), |s| Ok(s.to_owned()))
}

fn strings(value: &Value, path: &str) -> Result<Vec<String>> {
    match value.as_array() {
        Some(items) => items.iter().map(|item| string(item, path)).collect(),
        None => refuse(path, value),
    }
}

fn boolean(value: &Value, path: &str) -> Result<bool> {
    value.as_bool().map_or_else(|| refuse(path, value), Ok)
}

fn float(value: &Value, path: &str) -> Result<f64> {
    value.as_f64().map_or_else(|| refuse(path, value), Ok)
}

fn integer(value: &Value, path: &str) -> Result<i64> {
    value.as_i64().map_or_else(|| refuse(path, value), Ok)
}

/// A value as gnostic keeps it: YAML text.
fn any(value: &Value, path: &str) -> Result<Any> {
    match serde_norway::to_string(value) {
        Ok(yaml) => Ok(Any { yaml }),
        Err(e) => refuse(path, e),
    }
}

fn extension(name: &str, value: &Value, path: &str) -> Result<NamedAny> {
    Ok(NamedAny {
        name: name.to_owned(),
        value: Some(any(value, path)?),
    })
}

fn is_extension(key: &str) -> bool {
    key.starts_with("x-")
}

impl Document {
    /// The message for a Swagger 2.0 document in JSON.
    pub fn from_json(doc: &Value) -> Result<Document> {
        let mut out = Document::default();
        for (key, value) in object(doc, "")? {
            let path = key.as_str();
            match path {
                "swagger" => out.swagger = string(value, path)?,
                "info" => out.info = Some(info(value, path)?),
                "consumes" => out.consumes = strings(value, path)?,
                "produces" => out.produces = strings(value, path)?,
                "paths" => out.paths = Some(paths(value, path)?),
                "definitions" => {
                    let additional_properties = named_schemas(value, path)?;
                    out.definitions = Some(Definitions {
                        additional_properties,
                    });
                }
                k if is_extension(k) => out.vendor_extension.push(extension(k, value, path)?),
                _ => return refuse(path, "the field"),
            }
        }
        Ok(out)
    }
}

fn info(value: &Value, path: &str) -> Result<Info> {
    let mut out = Info::default();
    for (key, value) in object(value, path)? {
        let path = &format!("{path}.{key}");
        match key.as_str() {
            "title" => out.title = string(value, path)?,
            "version" => out.version = string(value, path)?,
            "description" => out.description = string(value, path)?,
            k if is_extension(k) => out.vendor_extension.push(extension(k, value, path)?),
            _ => return refuse(path, "the field"),
        }
    }
    Ok(out)
}

fn paths(value: &Value, path: &str) -> Result<Paths> {
    let mut out = Paths::default();
    for (url, value) in object(value, path)? {
        let path = &format!("{path}.{url}");
        if is_extension(url) {
            out.vendor_extension.push(extension(url, value, path)?);
            continue;
        }
        out.path.push(NamedPathItem {
            name: url.clone(),
            value: Some(path_item(value, path)?),
        });
    }
    Ok(out)
}

fn path_item(value: &Value, path: &str) -> Result<PathItem> {
    let mut out = PathItem::default();
    for (key, value) in object(value, path)? {
        let path = &format!("{path}.{key}");
        match key.as_str() {
            "get" => out.get = Some(operation(value, path)?),
            "put" => out.put = Some(operation(value, path)?),
            "post" => out.post = Some(operation(value, path)?),
            "delete" => out.delete = Some(operation(value, path)?),
            "patch" => out.patch = Some(operation(value, path)?),
            "parameters" => out.parameters = parameters(value, path)?,
            k if is_extension(k) => out.vendor_extension.push(extension(k, value, path)?),
            _ => return refuse(path, "the field"),
        }
    }
    Ok(out)
}

fn operation(value: &Value, path: &str) -> Result<Operation> {
    let mut out = Operation::default();
    for (key, value) in object(value, path)? {
        let path = &format!("{path}.{key}");
        match key.as_str() {
            "tags" => out.tags = strings(value, path)?,
            "description" => out.description = string(value, path)?,
            "operationId" => out.operation_id = string(value, path)?,
            "produces" => out.produces = strings(value, path)?,
            "consumes" => out.consumes = strings(value, path)?,
            "parameters" => out.parameters = parameters(value, path)?,
            "responses" => out.responses = Some(responses(value, path)?),
            "schemes" => out.schemes = strings(value, path)?,
            k if is_extension(k) => out.vendor_extension.push(extension(k, value, path)?),
            _ => return refuse(path, "the field"),
        }
    }
    Ok(out)
}

fn parameters(value: &Value, path: &str) -> Result<Vec<ParametersItem>> {
    let Some(items) = value.as_array() else {
        return refuse(path, value);
    };
    items
        .iter()
        .map(|item| {
            let oneof = parameter(item, path)?;
            Ok(ParametersItem {
                oneof: Some(parameters_item::Oneof::Parameter(Parameter {
                    oneof: Some(oneof),
                })),
            })
        })
        .collect()
}

fn parameter(value: &Value, path: &str) -> Result<parameter::Oneof> {
    let fields = object(value, path)?;
    let location = fields.get("in").and_then(Value::as_str).unwrap_or("");
    let path = &format!(
        "{path}.{}",
        fields.get("name").and_then(Value::as_str).unwrap_or("")
    );
    let mut body = BodyParameter::default();
    let mut simple = SimpleParameter::default();
    for (key, value) in fields {
        let path = &format!("{path}.{key}");
        match key.as_str() {
            "name" => simple.name = string(value, path)?,
            "in" => simple.r#in = string(value, path)?,
            "description" => simple.description = string(value, path)?,
            "required" => simple.required = boolean(value, path)?,
            "schema" if location == "body" => body.schema = Some(schema(value, path)?),
            "type" if location != "body" => simple.r#type = string(value, path)?,
            "format" if location != "body" => simple.format = string(value, path)?,
            "uniqueItems" if location != "body" => simple.unique_items = boolean(value, path)?,
            k if is_extension(k) => simple.vendor_extension.push(extension(k, value, path)?),
            _ => return refuse(path, "the field"),
        }
    }
    use non_body_parameter::Oneof as NonBody;
    let non_body =
        |oneof| parameter::Oneof::NonBodyParameter(NonBodyParameter { oneof: Some(oneof) });
    match location {
        "body" => Ok(parameter::Oneof::BodyParameter(Box::new(BodyParameter {
            description: simple.description,
            name: simple.name,
            r#in: simple.r#in,
            required: simple.required,
            vendor_extension: simple.vendor_extension,
            ..body
        }))),
        "query" => Ok(non_body(NonBody::QueryParameterSubSchema(simple))),
        "path" => Ok(non_body(NonBody::PathParameterSubSchema(PathParameter {
            required: simple.required,
            r#in: simple.r#in,
            description: simple.description,
            name: simple.name,
            r#type: simple.r#type,
            format: simple.format,
            unique_items: simple.unique_items,
            vendor_extension: simple.vendor_extension,
        }))),
        other => refuse(path, format!("a parameter in {other:?}")),
    }
}

fn responses(value: &Value, path: &str) -> Result<Responses> {
    let mut out = Responses::default();
    for (code, value) in object(value, path)? {
        let path = &format!("{path}.{code}");
        if is_extension(code) {
            out.vendor_extension.push(extension(code, value, path)?);
            continue;
        }
        let mut response = Response::default();
        for (key, value) in object(value, path)? {
            let path = &format!("{path}.{key}");
            match key.as_str() {
                "description" => response.description = string(value, path)?,
                "schema" => {
                    let oneof = schema_item::Oneof::Schema(schema(value, path)?);
                    response.schema = Some(SchemaItem { oneof: Some(oneof) });
                }
                k if is_extension(k) => response.vendor_extension.push(extension(k, value, path)?),
                _ => return refuse(path, "the field"),
            }
        }
        out.response_code.push(NamedResponseValue {
            name: code.clone(),
            value: Some(ResponseValue {
                oneof: Some(response_value::Oneof::Response(response)),
            }),
        });
    }
    Ok(out)
}

fn named_schemas(value: &Value, path: &str) -> Result<Vec<NamedSchema>> {
    object(value, path)?
        .iter()
        .map(|(name, value)| {
            Ok(NamedSchema {
                name: name.clone(),
                value: Some(schema(value, &format!("{path}.{name}"))?),
            })
        })
        .collect()
}

fn schema(value: &Value, path: &str) -> Result<Schema> {
    let mut out = Schema::default();
    for (key, value) in object(value, path)? {
        let path = &format!("{path}.{key}");
        match key.as_str() {
            "$ref" => out.r#ref = string(value, path)?,
            "format" => out.format = string(value, path)?,
            "title" => out.title = string(value, path)?,
            "description" => out.description = string(value, path)?,
            "default" => out.default = Some(any(value, path)?),
            "multipleOf" => out.multiple_of = float(value, path)?,
            "maximum" => out.maximum = float(value, path)?,
            "exclusiveMaximum" => out.exclusive_maximum = boolean(value, path)?,
            "minimum" => out.minimum = float(value, path)?,
            "exclusiveMinimum" => out.exclusive_minimum = boolean(value, path)?,
            "maxLength" => out.max_length = integer(value, path)?,
            "minLength" => out.min_length = integer(value, path)?,
            "pattern" => out.pattern = string(value, path)?,
            "maxItems" => out.max_items = integer(value, path)?,
            "minItems" => out.min_items = integer(value, path)?,
            "uniqueItems" => out.unique_items = boolean(value, path)?,
            "maxProperties" => out.max_properties = integer(value, path)?,
            "minProperties" => out.min_properties = integer(value, path)?,
            "required" => out.required = strings(value, path)?,
            "enum" => {
                let Some(items) = value.as_array() else {
                    return refuse(path, value);
                };
                out.r#enum = items.iter().map(|v| any(v, path)).collect::<Result<_>>()?;
            }
            "additionalProperties" => {
                use additional_properties_item::Oneof;
                let oneof = match value {
                    Value::Bool(allowed) => Oneof::Boolean(*allowed),
                    _ => Oneof::Schema(Box::new(schema(value, path)?)),
                };
                let item = AdditionalPropertiesItem { oneof: Some(oneof) };
                out.additional_properties = Some(Box::new(item));
            }
            "type" => {
                let value = match value {
                    Value::String(t) => vec![t.clone()],
                    _ => strings(value, path)?,
                };
                out.r#type = Some(TypeItem { value });
            }
            "items" => {
                let schemas = match value {
                    Value::Array(items) => items.iter().map(|v| schema(v, path)).collect(),
                    _ => schema(value, path).map(|s| vec![s]),
                };
                out.items = Some(ItemsItem { schema: schemas? });
            }
            "allOf" => {
                let Some(items) = value.as_array() else {
                    return refuse(path, value);
                };
                out.all_of = items
                    .iter()
                    .map(|v| schema(v, path))
                    .collect::<Result<_>>()?;
            }
            "properties" => {
                let additional_properties = named_schemas(value, path)?;
                out.properties = Some(Properties {
                    additional_properties,
                });
            }
            "readOnly" => out.read_only = boolean(value, path)?,
            "example" => out.example = Some(any(value, path)?),
            k if is_extension(k) => out.vendor_extension.push(extension(k, value, path)?),
            _ => return refuse(path, "the field"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_served_document_converts_and_decodes_back() {
        let doc = Document::from_json(super::super::document()).unwrap();
        let decoded = Document::decode(doc.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, doc);
        assert_eq!(decoded.swagger, "2.0");
        let definitions = decoded.definitions.unwrap().additional_properties;
        let pod = definitions
            .iter()
            .find(|d| d.name == "io.k8s.api.core.v1.Pod")
            .and_then(|d| d.value.as_ref())
            .unwrap();
        let gvk = pod
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .and_then(|e| e.value.as_ref())
            .unwrap();
        let gvk: Value = serde_norway::from_str(&gvk.yaml).unwrap();
        assert_eq!(gvk, json!([{"group": "", "kind": "Pod", "version": "v1"}]));
    }

    #[test]
    fn a_field_the_messages_cannot_carry_is_refused() {
        let doc = json!({"swagger": "2.0", "definitions": {"A": {"oneOf": []}}});
        let err = Document::from_json(&doc).unwrap_err();
        assert_eq!(err.path, "definitions.A.oneOf");
    }

    #[test]
    fn a_query_parameter_is_a_non_body_parameter() {
        let op = json!({"parameters": [
            {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true},
        ]});
        let op = operation(&op, "op").unwrap();
        let Some(parameters_item::Oneof::Parameter(Parameter {
            oneof: Some(parameter::Oneof::NonBodyParameter(non_body)),
        })) = &op.parameters[0].oneof
        else {
            panic!("{op:?}");
        };
        let Some(non_body_parameter::Oneof::QueryParameterSubSchema(query)) = &non_body.oneof
        else {
            panic!("{op:?}");
        };
        assert_eq!(query.name, "fieldValidation");
        assert!(query.unique_items);
    }
}

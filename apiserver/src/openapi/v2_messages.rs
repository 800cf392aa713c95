//! The messages of `openapi.v2` (gnostic's `openapiv2/OpenAPIv2.proto`, which
//! kube-openapi serves at `/openapi/v2` as protobuf and kubectl decodes), written out
//! as prost structs: field numbers and types as in the proto, names in Rust's case.
//! A JSON map becomes a repeated `Named…` pair in document order, a `$ref` the field
//! `_ref` (here `xref`), and a value of any shape an [`Any`] holding its YAML text.

// The variants are named as the proto names its fields (`…ParameterSubSchema`,
// `…Security`), so that the messages read as gnostic's do.
#![allow(clippy::enum_variant_names)]

use prost::Message;

/// `AdditionalPropertiesItem`: `additionalProperties`, a schema or a boolean.
#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "additional_properties_item::Oneof", tags = "1, 2")]
    pub oneof: Option<additional_properties_item::Oneof>,
}

/// The choices of [`AdditionalPropertiesItem`].
pub mod additional_properties_item {
    /// A schema or a boolean.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Schema(Box<super::Schema>),
        #[prost(bool, tag = "2")]
        Boolean(bool),
    }
}

/// `Any`: a value of any shape, as YAML text. Its field 1 (a `google.protobuf.Any`)
/// is never written: gnostic fills it only for registered extension handlers, and
/// kube-openapi reads the YAML.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// `ApiKeySecurity`.
#[derive(Clone, PartialEq, Message)]
pub struct ApiKeySecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `BasicAuthenticationSecurity`.
#[derive(Clone, PartialEq, Message)]
pub struct BasicAuthenticationSecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `BodyParameter`: a parameter `in: body`.
#[derive(Clone, PartialEq, Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Contact`.
#[derive(Clone, PartialEq, Message)]
pub struct Contact {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(string, tag = "3")]
    pub email: String,
    #[prost(message, repeated, tag = "4")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Definitions`: the document's `definitions`.
#[derive(Clone, PartialEq, Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `Document`: the whole `/openapi/v2`.
#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, tag = "3")]
    pub host: String,
    #[prost(string, tag = "4")]
    pub base_path: String,
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, optional, tag = "10")]
    pub parameters: Option<ParameterDefinitions>,
    #[prost(message, optional, tag = "11")]
    pub responses: Option<ResponseDefinitions>,
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    #[prost(message, optional, tag = "13")]
    pub security_definitions: Option<SecurityDefinitions>,
    #[prost(message, repeated, tag = "14")]
    pub tags: Vec<Tag>,
    #[prost(message, optional, tag = "15")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Examples`: a response's examples by media type.
#[derive(Clone, PartialEq, Message)]
pub struct Examples {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedAny>,
}

/// `ExternalDocs`.
#[derive(Clone, PartialEq, Message)]
pub struct ExternalDocs {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `FileSchema`: a response schema of `type: file`.
#[derive(Clone, PartialEq, Message)]
pub struct FileSchema {
    #[prost(string, tag = "1")]
    pub format: String,
    #[prost(string, tag = "2")]
    pub title: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(message, optional, tag = "4")]
    pub default: Option<Any>,
    #[prost(string, repeated, tag = "5")]
    pub required: Vec<String>,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(bool, tag = "7")]
    pub read_only: bool,
    #[prost(message, optional, tag = "8")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, optional, tag = "9")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The fields a non-body parameter, a header and a primitive item share, in one
/// struct per message since their field numbers differ. `$first` are the fields
/// before `type` (numbered from 1), then the shared ones from `$n`.
macro_rules! primitive_message {
    (
        $(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident: $ty:ty,)* }
        shared from $type:literal, $format:literal, $items:literal, $cf:literal,
        $default:literal, $max:literal, $emax:literal, $min:literal, $emin:literal,
        $maxl:literal, $minl:literal, $pattern:literal, $maxi:literal, $mini:literal,
        $unique:literal, $enum:literal, $mult:literal
        then { $($(#[$lattr:meta])* $last:ident: $lty:ty,)* }
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Message)]
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
            #[prost(string, tag = $type)]
            pub r#type: String,
            #[prost(string, tag = $format)]
            pub format: String,
            #[prost(message, optional, boxed, tag = $items)]
            pub items: Option<Box<PrimitivesItems>>,
            #[prost(string, tag = $cf)]
            pub collection_format: String,
            #[prost(message, optional, tag = $default)]
            pub default: Option<Any>,
            #[prost(double, tag = $max)]
            pub maximum: f64,
            #[prost(bool, tag = $emax)]
            pub exclusive_maximum: bool,
            #[prost(double, tag = $min)]
            pub minimum: f64,
            #[prost(bool, tag = $emin)]
            pub exclusive_minimum: bool,
            #[prost(int64, tag = $maxl)]
            pub max_length: i64,
            #[prost(int64, tag = $minl)]
            pub min_length: i64,
            #[prost(string, tag = $pattern)]
            pub pattern: String,
            #[prost(int64, tag = $maxi)]
            pub max_items: i64,
            #[prost(int64, tag = $mini)]
            pub min_items: i64,
            #[prost(bool, tag = $unique)]
            pub unique_items: bool,
            #[prost(message, repeated, tag = $enum)]
            pub r#enum: Vec<Any>,
            #[prost(double, tag = $mult)]
            pub multiple_of: f64,
            $($(#[$lattr])* pub $last: $lty,)*
        }
    };
}

primitive_message! {
    /// `FormDataParameterSubSchema`: a parameter `in: formData`.
    FormDataParameterSubSchema {
        #[prost(bool, tag = "1")] required: bool,
        #[prost(string, tag = "2")] r#in: String,
        #[prost(string, tag = "3")] description: String,
        #[prost(string, tag = "4")] name: String,
        #[prost(bool, tag = "5")] allow_empty_value: bool,
    }
    shared from "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18",
        "19", "20", "21", "22"
    then { #[prost(message, repeated, tag = "23")] vendor_extension: Vec<NamedAny>, }
}

primitive_message! {
    /// `Header`: a response header.
    Header {}
    shared from "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
        "15", "16", "17"
    then {
        #[prost(string, tag = "18")] description: String,
        #[prost(message, repeated, tag = "19")] vendor_extension: Vec<NamedAny>,
    }
}

primitive_message! {
    /// `HeaderParameterSubSchema`: a parameter `in: header`.
    HeaderParameterSubSchema {
        #[prost(bool, tag = "1")] required: bool,
        #[prost(string, tag = "2")] r#in: String,
        #[prost(string, tag = "3")] description: String,
        #[prost(string, tag = "4")] name: String,
    }
    shared from "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17",
        "18", "19", "20", "21"
    then { #[prost(message, repeated, tag = "22")] vendor_extension: Vec<NamedAny>, }
}

primitive_message! {
    /// `PathParameterSubSchema`: a parameter `in: path`.
    PathParameterSubSchema {
        #[prost(bool, tag = "1")] required: bool,
        #[prost(string, tag = "2")] r#in: String,
        #[prost(string, tag = "3")] description: String,
        #[prost(string, tag = "4")] name: String,
    }
    shared from "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17",
        "18", "19", "20", "21"
    then { #[prost(message, repeated, tag = "22")] vendor_extension: Vec<NamedAny>, }
}

primitive_message! {
    /// `PrimitivesItems`: the `items` of a non-body parameter or header.
    PrimitivesItems {}
    shared from "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
        "15", "16", "17"
    then { #[prost(message, repeated, tag = "18")] vendor_extension: Vec<NamedAny>, }
}

primitive_message! {
    /// `QueryParameterSubSchema`: a parameter `in: query`.
    QueryParameterSubSchema {
        #[prost(bool, tag = "1")] required: bool,
        #[prost(string, tag = "2")] r#in: String,
        #[prost(string, tag = "3")] description: String,
        #[prost(string, tag = "4")] name: String,
        #[prost(bool, tag = "5")] allow_empty_value: bool,
    }
    shared from "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18",
        "19", "20", "21", "22"
    then { #[prost(message, repeated, tag = "23")] vendor_extension: Vec<NamedAny>, }
}

/// `Headers`: a response's headers.
#[derive(Clone, PartialEq, Message)]
pub struct Headers {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedHeader>,
}

/// `Info`.
#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub terms_of_service: String,
    #[prost(message, optional, tag = "5")]
    pub contact: Option<Contact>,
    #[prost(message, optional, tag = "6")]
    pub license: Option<License>,
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ItemsItem`: a schema's `items`.
#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// `JsonReference`: a `$ref` where a parameter or response could be.
#[derive(Clone, PartialEq, Message)]
pub struct JsonReference {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

/// `License`.
#[derive(Clone, PartialEq, Message)]
pub struct License {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A `Named…` pair: one entry of a JSON map.
macro_rules! named {
    ($(#[$doc:meta])* $name:ident, $(#[$vattr:meta])* $value:ty) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Message)]
        pub struct $name {
            #[prost(string, tag = "1")]
            pub name: String,
            $(#[$vattr])*
            pub value: $value,
        }
    };
}

named!(
    /// `NamedAny`: a vendor extension (`x-…`) or an example.
    NamedAny, #[prost(message, optional, tag = "2")] Option<Any>
);
named!(
    /// `NamedHeader`.
    NamedHeader, #[prost(message, optional, tag = "2")] Option<Header>
);
named!(
    /// `NamedParameter`.
    NamedParameter, #[prost(message, optional, tag = "2")] Option<Parameter>
);
named!(
    /// `NamedPathItem`: one path.
    NamedPathItem, #[prost(message, optional, tag = "2")] Option<PathItem>
);
named!(
    /// `NamedResponse`.
    NamedResponse, #[prost(message, optional, tag = "2")] Option<Response>
);
named!(
    /// `NamedResponseValue`: one response code.
    NamedResponseValue, #[prost(message, optional, tag = "2")] Option<ResponseValue>
);
named!(
    /// `NamedSchema`: a definition or a property.
    NamedSchema, #[prost(message, optional, tag = "2")] Option<Schema>
);
named!(
    /// `NamedSecurityDefinitionsItem`.
    NamedSecurityDefinitionsItem,
    #[prost(message, optional, tag = "2")] Option<SecurityDefinitionsItem>
);
named!(
    /// `NamedString`: an OAuth2 scope.
    NamedString, #[prost(string, tag = "2")] String
);
named!(
    /// `NamedStringArray`: a security requirement's scopes.
    NamedStringArray, #[prost(message, optional, tag = "2")] Option<StringArray>
);

/// `NonBodyParameter`: a parameter in a query, path, header or form.
#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "non_body_parameter::Oneof", tags = "1, 2, 3, 4")]
    pub oneof: Option<non_body_parameter::Oneof>,
}

/// The choices of [`NonBodyParameter`].
pub mod non_body_parameter {
    /// Where the parameter is (`in`).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        HeaderParameterSubSchema(super::HeaderParameterSubSchema),
        #[prost(message, tag = "2")]
        FormDataParameterSubSchema(super::FormDataParameterSubSchema),
        #[prost(message, tag = "3")]
        QueryParameterSubSchema(super::QueryParameterSubSchema),
        #[prost(message, tag = "4")]
        PathParameterSubSchema(super::PathParameterSubSchema),
    }
}

/// An OAuth2 security definition: the four flows differ only in their URLs.
macro_rules! oauth2 {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Message)]
        pub struct $name {
            #[prost(string, tag = "1")]
            pub r#type: String,
            #[prost(string, tag = "2")]
            pub flow: String,
            #[prost(message, optional, tag = "3")]
            pub scopes: Option<Oauth2Scopes>,
            $($(#[$fattr])* pub $field: $ty,)*
        }
    };
}

oauth2! {
    /// `Oauth2AccessCodeSecurity`.
    Oauth2AccessCodeSecurity {
        #[prost(string, tag = "4")] authorization_url: String,
        #[prost(string, tag = "5")] token_url: String,
        #[prost(string, tag = "6")] description: String,
        #[prost(message, repeated, tag = "7")] vendor_extension: Vec<NamedAny>,
    }
}
oauth2! {
    /// `Oauth2ApplicationSecurity`.
    Oauth2ApplicationSecurity {
        #[prost(string, tag = "4")] token_url: String,
        #[prost(string, tag = "5")] description: String,
        #[prost(message, repeated, tag = "6")] vendor_extension: Vec<NamedAny>,
    }
}
oauth2! {
    /// `Oauth2ImplicitSecurity`.
    Oauth2ImplicitSecurity {
        #[prost(string, tag = "4")] authorization_url: String,
        #[prost(string, tag = "5")] description: String,
        #[prost(message, repeated, tag = "6")] vendor_extension: Vec<NamedAny>,
    }
}
oauth2! {
    /// `Oauth2PasswordSecurity`.
    Oauth2PasswordSecurity {
        #[prost(string, tag = "4")] token_url: String,
        #[prost(string, tag = "5")] description: String,
        #[prost(message, repeated, tag = "6")] vendor_extension: Vec<NamedAny>,
    }
}

/// `Oauth2Scopes`.
#[derive(Clone, PartialEq, Message)]
pub struct Oauth2Scopes {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedString>,
}

/// `Operation`: one method of a path.
#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(message, optional, tag = "4")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Parameter`: in the body or elsewhere.
#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    #[prost(oneof = "parameter::Oneof", tags = "1, 2")]
    pub oneof: Option<parameter::Oneof>,
}

/// The choices of [`Parameter`].
pub mod parameter {
    /// A body or a non-body parameter.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        BodyParameter(Box<super::BodyParameter>),
        #[prost(message, tag = "2")]
        NonBodyParameter(Box<super::NonBodyParameter>),
    }
}

/// `ParameterDefinitions`: the document's `parameters`.
#[derive(Clone, PartialEq, Message)]
pub struct ParameterDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedParameter>,
}

/// `ParametersItem`: a parameter or a reference to one.
#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    #[prost(oneof = "parameters_item::Oneof", tags = "1, 2")]
    pub oneof: Option<parameters_item::Oneof>,
}

/// The choices of [`ParametersItem`].
pub mod parameters_item {
    /// A parameter or a `$ref`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Parameter(Box<super::Parameter>),
        #[prost(message, tag = "2")]
        JsonReference(super::JsonReference),
    }
}

/// `PathItem`: the operations of one path.
#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Paths`: the document's `paths`.
#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// `Properties`: a schema's `properties`.
#[derive(Clone, PartialEq, Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `Response`.
#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    #[prost(message, optional, tag = "3")]
    pub headers: Option<Headers>,
    #[prost(message, optional, tag = "4")]
    pub examples: Option<Examples>,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ResponseDefinitions`: the document's `responses`.
#[derive(Clone, PartialEq, Message)]
pub struct ResponseDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedResponse>,
}

/// `ResponseValue`: a response or a reference to one.
#[derive(Clone, PartialEq, Message)]
pub struct ResponseValue {
    #[prost(oneof = "response_value::Oneof", tags = "1, 2")]
    pub oneof: Option<response_value::Oneof>,
}

/// The choices of [`ResponseValue`].
pub mod response_value {
    /// A response or a `$ref`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Response(Box<super::Response>),
        #[prost(message, tag = "2")]
        JsonReference(super::JsonReference),
    }
}

/// `Responses`: an operation's responses by code.
#[derive(Clone, PartialEq, Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Schema`: a definition, a property, a body or a response.
#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(string, tag = "26")]
    pub discriminator: String,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "28")]
    pub xml: Option<Xml>,
    #[prost(message, optional, tag = "29")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `SchemaItem`: a response's schema.
#[derive(Clone, PartialEq, Message)]
pub struct SchemaItem {
    #[prost(oneof = "schema_item::Oneof", tags = "1, 2")]
    pub oneof: Option<schema_item::Oneof>,
}

/// The choices of [`SchemaItem`].
pub mod schema_item {
    /// A schema or a file.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Schema(Box<super::Schema>),
        #[prost(message, tag = "2")]
        FileSchema(Box<super::FileSchema>),
    }
}

/// `SecurityDefinitions`: the document's `securityDefinitions`.
#[derive(Clone, PartialEq, Message)]
pub struct SecurityDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSecurityDefinitionsItem>,
}

/// `SecurityDefinitionsItem`: one scheme, by its `type` (and OAuth2 `flow`).
#[derive(Clone, PartialEq, Message)]
pub struct SecurityDefinitionsItem {
    #[prost(oneof = "security_definitions_item::Oneof", tags = "1, 2, 3, 4, 5, 6")]
    pub oneof: Option<security_definitions_item::Oneof>,
}

/// The choices of [`SecurityDefinitionsItem`].
pub mod security_definitions_item {
    /// A security scheme.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        BasicAuthenticationSecurity(super::BasicAuthenticationSecurity),
        #[prost(message, tag = "2")]
        ApiKeySecurity(super::ApiKeySecurity),
        #[prost(message, tag = "3")]
        Oauth2ImplicitSecurity(super::Oauth2ImplicitSecurity),
        #[prost(message, tag = "4")]
        Oauth2PasswordSecurity(super::Oauth2PasswordSecurity),
        #[prost(message, tag = "5")]
        Oauth2ApplicationSecurity(super::Oauth2ApplicationSecurity),
        #[prost(message, tag = "6")]
        Oauth2AccessCodeSecurity(super::Oauth2AccessCodeSecurity),
    }
}

/// `SecurityRequirement`: scheme names and their scopes.
#[derive(Clone, PartialEq, Message)]
pub struct SecurityRequirement {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedStringArray>,
}

/// `StringArray`.
#[derive(Clone, PartialEq, Message)]
pub struct StringArray {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `Tag`.
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(message, optional, tag = "3")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, repeated, tag = "4")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `TypeItem`: a schema's `type`, one name or several.
#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `Xml`.
#[derive(Clone, PartialEq, Message)]
pub struct Xml {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(string, tag = "3")]
    pub prefix: String,
    #[prost(bool, tag = "4")]
    pub attribute: bool,
    #[prost(bool, tag = "5")]
    pub wrapped: bool,
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

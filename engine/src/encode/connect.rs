//! Kafka Connect's data model: the schemas and values Debezium hands to a converter.
//!
//! Debezium does not write bytes itself: it builds Connect `Schema`s and `Struct`s, and a
//! converter (`JsonConverter`, Confluent's `AvroConverter`) serialises them. walrelay keeps the
//! same split so that every format writes the same thing: [`columns`](super::columns) maps a
//! PostgreSQL column to a [`Schema`] and its values to [`Datum`]s once, and each format
//! ([`json`](super::json), [`avro`](super::avro)) only knows how to write Connect data.
use std::borrow::Cow;

/// A Connect schema (`org.apache.kafka.connect.data.Schema`).
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub ty: Type,
    pub optional: bool,
    /// The semantic name (`io.debezium.time.Date`, `pg.public.products.Value`, …).
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// In insertion order (Connect keeps a `LinkedHashMap`, and converters write it in order).
    pub parameters: Vec<(String, String)>,
    /// The default value, written in place of a null and declared in the schema.
    pub default: Option<Datum<'static>>,
}

/// A Connect schema type. Struct members, array items and map keys/values are schemas too.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bytes,
    String,
    Array(Box<Schema>),
    Map(Box<Schema>, Box<Schema>),
    Struct(Vec<Field>),
}

/// A struct member.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: Schema,
}

impl Schema {
    /// A schema of a type with nothing else set.
    pub fn new(ty: Type, optional: bool) -> Schema {
        Schema {
            ty,
            optional,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
        }
    }

    /// A struct schema with these members.
    pub fn structure(name: impl Into<String>, optional: bool, fields: Vec<Field>) -> Schema {
        Schema::new(Type::Struct(fields), optional).named(name)
    }

    pub fn named(mut self, name: impl Into<String>) -> Schema {
        self.name = Some(name.into());
        self
    }

    pub fn version(mut self, version: i32) -> Schema {
        self.version = Some(version);
        self
    }

    pub fn doc(mut self, doc: impl Into<String>) -> Schema {
        self.doc = Some(doc.into());
        self
    }

    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Schema {
        self.parameters.push((key.into(), value.into()));
        self
    }

    pub fn with_default(mut self, default: Option<Datum<'static>>) -> Schema {
        self.default = default;
        self
    }

    /// As a struct member.
    pub fn field(self, name: impl Into<String>) -> Field {
        Field {
            name: name.into(),
            schema: self,
        }
    }

    /// The struct members, when this is a struct.
    pub fn fields(&self) -> &[Field] {
        match &self.ty {
            Type::Struct(f) => f,
            _ => &[],
        }
    }
}

/// A Connect value. Structs are positional against their schema's fields; strings and bytes
/// borrow from the event when they can.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum<'a> {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    Array(Vec<Datum<'a>>),
    Map(Vec<(Datum<'a>, Datum<'a>)>),
    Struct(Vec<Datum<'a>>),
}

impl Datum<'_> {
    /// An owned copy (for defaults kept in schemas).
    pub fn into_owned(self) -> Datum<'static> {
        match self {
            Datum::Null => Datum::Null,
            Datum::Boolean(b) => Datum::Boolean(b),
            Datum::Int8(x) => Datum::Int8(x),
            Datum::Int16(x) => Datum::Int16(x),
            Datum::Int32(x) => Datum::Int32(x),
            Datum::Int64(x) => Datum::Int64(x),
            Datum::Float32(x) => Datum::Float32(x),
            Datum::Float64(x) => Datum::Float64(x),
            Datum::String(s) => Datum::String(Cow::Owned(s.into_owned())),
            Datum::Bytes(b) => Datum::Bytes(Cow::Owned(b.into_owned())),
            Datum::Array(v) => Datum::Array(v.into_iter().map(Datum::into_owned).collect()),
            Datum::Map(v) => Datum::Map(
                v.into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            Datum::Struct(v) => Datum::Struct(v.into_iter().map(Datum::into_owned).collect()),
        }
    }

    pub fn str(s: &str) -> Datum<'_> {
        Datum::String(Cow::Borrowed(s))
    }

    pub fn string(s: String) -> Datum<'static> {
        Datum::String(Cow::Owned(s))
    }
}

//! Error codes of signaling protocol v1 (`{"type":"error","code":…}`).

/// The `code` of an `error` frame. An error never closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not a JSON object, or is malformed JSON.
    BadJson,
    /// `type` names no known message.
    UnknownType,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type or an illegal value.
    BadField,
    /// No session with the `target` id exists.
    UnknownTarget,
    /// The sender is not a member of the room it names.
    NotInRoom,
    /// The sender is already a member of the room it asks to join.
    AlreadyInRoom,
    /// The room has reached `members_per_room_max`.
    RoomFull,
    /// The session has reached `rooms_per_session_max`.
    TooManyRooms,
    /// The frame or one of its fields exceeds a size limit.
    TooLarge,
    /// The session sends faster than its rate limit.
    RateLimited,
    /// Credentials are wrong.
    Unauthorized,
    /// An offer or answer carries an SDP that does not validate.
    InvalidSdp,
    /// A resume names a session that no longer exists.
    SessionExpired,
}

impl ErrorCode {
    /// The kebab-case wire form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad-json",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::MissingField => "missing-field",
            ErrorCode::BadField => "bad-field",
            ErrorCode::UnknownTarget => "unknown-target",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::AlreadyInRoom => "already-in-room",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::TooManyRooms => "too-many-rooms",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidSdp => "invalid-sdp",
            ErrorCode::SessionExpired => "session-expired",
        }
    }

    /// Every code, for metrics and documentation.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::MissingField,
        ErrorCode::BadField,
        ErrorCode::UnknownTarget,
        ErrorCode::NotInRoom,
        ErrorCode::AlreadyInRoom,
        ErrorCode::RoomFull,
        ErrorCode::TooManyRooms,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidSdp,
        ErrorCode::SessionExpired,
    ];
}

/// A client frame that cannot be acted on, with what to tell its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError<'a> {
    /// The error code.
    pub code: ErrorCode,
    /// A human sentence saying what was wrong.
    pub message: &'static str,
    /// The frame's `ref`, re-encoded as JSON, when it could be read.
    pub reference: Option<&'a [u8]>,
}

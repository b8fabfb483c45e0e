"""schemathesis hooks of tests/tests/openapi.rs (loaded through SCHEMATHESIS_HOOKS).

An OHTTP encapsulated request (`message/ohttp-req`, RFC 9458) is opaque bytes: send the generated
binary bodies as they are, as for `application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("message/ohttp-req", "application/octet-stream")

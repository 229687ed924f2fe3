"""Optional encryption of every payload (AES-256-GCM), so backend refs, names and metadata
are not readable in the Temporal UI or the server's database without the key.

Set VOLUME_MANAGE_PAYLOAD_KEY to a base64-encoded 32-byte key on every worker and client
(`python -c "import os,base64; print(base64.b64encode(os.urandom(32)).decode())"`). Without
it, payloads are plain JSON. The UI shows decrypted payloads through the codec server, which
holds the same key (`volume-manage-codec-server`, volume_manage/operations/codec_server.py).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

KEY_VARIABLE = "VOLUME_MANAGE_PAYLOAD_KEY"
ENCODING = b"binary/encrypted"
NONCE_BYTES = 12


class EncryptionCodec(PayloadCodec):
    def __init__(self, key: bytes, key_id: str = "default") -> None:
        self._aes = AESGCM(key)
        self._key_id = key_id.encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = self._aes.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(Payload(metadata={"encoding": ENCODING,
                                             "encryption-key-id": self._key_id},
                                   data=nonce + sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # written before encryption was turned on
                continue
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            decoded.append(Payload.FromString(self._aes.decrypt(nonce, sealed, None)))
        return decoded


def key_from_env() -> bytes | None:
    """The key from the environment, or None; a malformed key is an error, not a fallback."""
    text = os.environ.get(KEY_VARIABLE)
    if not text:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{KEY_VARIABLE} must be base64") from None
    if len(key) != 32:
        raise ValueError(f"{KEY_VARIABLE} must decode to 32 bytes, got {len(key)}")
    return key


def with_encryption(converter: DataConverter, key: bytes | None) -> DataConverter:
    if key is None:
        return converter
    return dataclasses.replace(converter, payload_codec=EncryptionCodec(key))

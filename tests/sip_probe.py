"""A tiny SIP client for tests: REGISTER over TLS with digest authentication (RFC 2617, MD5).

Enough to check what Asterisk accepts or refuses (passwords, unknown users, ACLs) without a
real phone. Real phones (baresip) are used for calls.
"""
from __future__ import annotations

import hashlib
import re
import socket
import ssl
import uuid


def _read_response(sock: ssl.SSLSocket, timeout: float, buffer: bytearray) -> tuple[int, dict[str, str]]:
    """The next SIP response on the connection; requests from Asterisk (OPTIONS qualify) are skipped."""
    sock.settimeout(timeout)
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed before a response")
            buffer += chunk
        head, _, _rest = bytes(buffer).partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", headers.get("l", "0")) or 0)
        while len(buffer) < len(head) + 4 + length:
            buffer += sock.recv(4096)
        del buffer[: len(head) + 4 + length]
        if lines[0].startswith("SIP/2.0 "):
            return int(lines[0].split()[1]), headers


def register(host: str, port: int, user: str, password: str, cafile: str, realm_host: str = "127.0.0.1",
             timeout: float = 5, source: str | None = None) -> int:
    """REGISTER `user` (answering one digest challenge) from `source` (an address of this machine,
    e.g. another loopback address); returns the final status code (200, 401, 403...)."""
    context = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0) if source else None)
    with context.wrap_socket(raw, server_hostname=realm_host) as sock:
        local_host, local_port = sock.getsockname()[:2]
        call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        buffer = bytearray()
        uri = f"sip:{realm_host}:{port};transport=tls"

        def send(cseq: int, auth: str = "") -> tuple[int, dict[str, str]]:
            lines = [
                f"REGISTER {uri} SIP/2.0",
                f"Via: SIP/2.0/TLS {local_host}:{local_port};rport;branch=z9hG4bK{uuid.uuid4().hex[:16]}",
                "Max-Forwards: 70",
                f"From: <sip:{user}@{realm_host}>;tag={tag}",
                f"To: <sip:{user}@{realm_host}>",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} REGISTER",
                f"Contact: <sip:{user}@{local_host}:{local_port};transport=tls>",
                "Expires: 60",
                "User-Agent: tawasul-probe",
            ]
            if auth:
                lines.append(f"Authorization: {auth}")
            sock.sendall(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
            while True:
                status, headers = _read_response(sock, timeout, buffer)
                if status >= 200:
                    return status, headers

        status, headers = send(1)
        if status != 401:
            return status
        challenge = headers.get("www-authenticate", "")
        realm = re.search(r'realm="([^"]*)"', challenge).group(1)
        nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
        opaque = re.search(r'opaque="([^"]*)"', challenge)
        qop = "auth" if re.search(r'qop="[^"]*auth', challenge) else None
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        cnonce, nc = uuid.uuid4().hex[:16], "00000001"
        if qop:
            response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
        else:
            response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        auth = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5')
        if qop:
            auth += f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
        if opaque:
            auth += f', opaque="{opaque.group(1)}"'
        return send(2, auth)[0]

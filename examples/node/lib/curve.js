// CURVE keys for a broker with a [security] section (docs/PROTOCOL.md, "Encryption and
// authentication"): Z85 text keys, the public key derived from a secret one (X25519, as
// zmq_curve_public() does), and the socket options a DEALER needs.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex"); // DER prefix of a raw key

export function z85Decode(text) {
  if (text.length % 5 !== 0) throw new Error(`a Z85 key has a multiple of 5 characters, got ${text.length}`);
  const bytes = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (const c of text.slice(i, i + 5)) {
      const digit = Z85.indexOf(c);
      if (digit < 0) throw new Error(`'${c}' is not a Z85 character`);
      value = value * 85 + digit;
    }
    bytes.writeUInt32BE(value >>> 0, (i / 5) * 4);
  }
  return bytes;
}

export function z85Encode(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let value = bytes.readUInt32BE(i);
    const chunk = [];
    for (let j = 0; j < 5; j++, value = Math.floor(value / 85)) chunk.unshift(Z85[value % 85]);
    text += chunk.join("");
  }
  return text;
}

// The Z85 public key of a Z85 secret key.
export function publicKeyOf(secretKey) {
  const raw = z85Decode(secretKey);
  if (raw.length !== 32) throw new Error("a CURVE key is 40 Z85 characters");
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: "der", type: "pkcs8" });
  return z85Encode(createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32));
}

// A key given as its 40 characters, or as a file holding it (a flame keygen .key or .pub).
export function readKey(keyOrFile) {
  const text = /^[\x21-\x7e]{40}$/.test(keyOrFile) ? keyOrFile : readFileSync(keyOrFile, "utf8").trim().split(/\s/)[0];
  if (z85Decode(text).length !== 32) throw new Error(`${keyOrFile}: not a 40-character Z85 key`);
  return text;
}

// Socket options for `new Dealer({ ...curveOptions(curve) })`: `curve` is
// `{ serverKey, secretKey }` (Z85 text; the public key is derived), or undefined for plaintext.
export function curveOptions(curve) {
  if (!curve) return {};
  const secretKey = readKey(curve.secretKey);
  return { curveServerKey: readKey(curve.serverKey), curveSecretKey: secretKey, curvePublicKey: publicKeyOf(secretKey) };
}

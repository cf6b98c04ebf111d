// An independent reader's view of the GGUF files QuantForge writes: each
// file is parsed with @huggingface/gguf and its tensor names, ggml types and
// shapes (ggml order, dims[0] = row length) and general.file_type /
// general.quantization_version are compared with what the writer planned.
//
// Usage: node check_gguf.mjs EXPECTED.json
//   EXPECTED.json: {"files": [{"path": "...", "file_type": 7,
//                   "tensors": [{"name": "token_embd.weight", "type": "Q8_0", "dims": [64, 512]}, ...]}]}
// Exits 1 and names every mismatch; 0 when all files agree.
import { readFileSync } from "node:fs";
import { gguf, GGMLQuantizationType } from "@huggingface/gguf";

const expectedPath = process.argv[2];
if (!expectedPath) {
  console.error("usage: node check_gguf.mjs EXPECTED.json");
  process.exit(2);
}
const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
const problems = [];

for (const file of expected.files) {
  const where = file.path;
  let parsed;
  try {
    parsed = await gguf(file.path, { allowLocalFile: true });
  } catch (e) {
    problems.push(`${where}: @huggingface/gguf cannot parse it: ${e.message}`);
    continue;
  }
  const { metadata, tensorInfos } = parsed;
  if (metadata.version !== 3) problems.push(`${where}: GGUF version ${metadata.version}, expected 3`);
  if (Number(metadata["general.file_type"]) !== file.file_type)
    problems.push(`${where}: general.file_type ${metadata["general.file_type"]}, expected ${file.file_type}`);
  if (Number(metadata["general.quantization_version"]) !== 2)
    problems.push(`${where}: general.quantization_version ${metadata["general.quantization_version"]}, expected 2`);
  if (tensorInfos.length !== file.tensors.length)
    problems.push(`${where}: ${tensorInfos.length} tensors, expected ${file.tensors.length}`);
  const n = Math.min(tensorInfos.length, file.tensors.length);
  for (let i = 0; i < n; i++) {
    const got = tensorInfos[i];
    const want = file.tensors[i];
    const type = GGMLQuantizationType[got.dtype];
    const dims = got.shape.map(Number);
    if (got.name !== want.name) problems.push(`${where}: tensor ${i} is "${got.name}", expected "${want.name}"`);
    if (type !== want.type) problems.push(`${where}: tensor "${got.name}" is ${type}, expected ${want.type}`);
    if (JSON.stringify(dims) !== JSON.stringify(want.dims))
      problems.push(`${where}: tensor "${got.name}" has dims [${dims}], expected [${want.dims}]`);
  }
  console.log(`${where}: ${tensorInfos.length} tensors checked`);
}

if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}

// Files the package ships, found from the compiled code (dist/nodes/shared/).
import * as path from "path";

export const PACKAGE_ROOT = path.resolve(__dirname, "..", "..", "..");
export const BUNDLED_MODEL = path.join(PACKAGE_ROOT, "models", "mnist-cnn.onnx");
export const BUNDLED_SAMPLES = path.join(PACKAGE_ROOT, "models", "samples");

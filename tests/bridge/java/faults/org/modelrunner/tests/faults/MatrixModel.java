package org.modelrunner.tests.faults;

import java.io.IOException;
import java.nio.file.Path;

/**
 * FaultModel's and StubbornModel's faults behind one rpc, picked by the request's n, so that a bundle
 * serving them passes validation (its example, n = 0, echoes): tests/e2e/test_fault_matrix.py.
 */
public class MatrixModel {
    private final FaultModel faults;
    private final StubbornModel stubborn = new StubbornModel();

    public MatrixModel(Path artifactDir) throws IOException {
        faults = new FaultModel(artifactDir);
    }

    public Reply fault(Req r) {
        switch (r.n) {
            case 1: return faults.exit(r);            // System.exit(3)
            case 2: return faults.hog(r);             // OutOfMemoryError
            case 3: return stubborn.stubborn(r);      // a loop that catches Throwable, until released
            case 4: return stubborn.release(r);       // ends every such loop of this model version
            default: return faults.echo(r);
        }
    }
}

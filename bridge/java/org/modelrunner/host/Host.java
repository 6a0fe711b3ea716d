package org.modelrunner.host;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;

/** Entry points Python calls (bridge/model.py, bridge/inspect.py, bridge/jvm.py). */
public final class Host {
    private Host() {}

    public static final String VERSION = "1";

    /** Opens a model version: a new class loader over {@code jars}, the class loaded and initialised. */
    public static Slot open(String className, String artifactDir, String[] jars, String schema) throws HostException {
        return open(className, artifactDir, jars, schema, null, null);
    }

    /**
     * As above; the version's output lines (System.out, System.err, java.util.logging) are tagged
     * {@code [model=<name> version=<version> pid=N]} and go to logger {@code model.<name>} (see ModelOutput).
     */
    public static Slot open(String className, String artifactDir, String[] jars, String schema, String name, String version)
            throws HostException {
        Guard.installExitGuard();
        ModelOutput.Tag output = name == null || name.isEmpty() ? null : ModelOutput.tag(name, version);
        return Slot.open(className, artifactDir, jars, schema, output, name, version);
    }

    /** Tags model output from now on (once per JVM); bridge/output.py drains it: see ModelOutput. */
    public static void installModelOutput() { ModelOutput.install(); }

    /** {loaded classes, unloaded classes, total loaded, metaspace used bytes, heap used bytes, exit guard 0/1}. */
    public static long[] stats() {
        long meta = -1;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans())
            if (p.getName().equals("Metaspace")) meta = p.getUsage().getUsed();
        var cl = ManagementFactory.getClassLoadingMXBean();
        return new long[] {cl.getLoadedClassCount(), cl.getUnloadedClassCount(), cl.getTotalLoadedClassCount(), meta,
                ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed(), Guard.exitGuard ? 1 : 0};
    }

    /** JSON list of the calls stuck past their deadline (see Guard.stuckJson). */
    public static String stuckCalls() { return Guard.stuckJson(); }

    /** {calls abandoned at their deadline, calls declared stuck}, since the JVM started. */
    public static long[] callCounts() { return Guard.callCounts(); }

    public static String exitGuardError() { return Guard.exitGuardError; }

    /** Installs the System.exit guard now (it is also installed on the first open). */
    public static void installExitGuard() { Guard.installExitGuard(); }

    /** Full garbage collection (class unloading happens here with G1). */
    public static void gc() {
        System.gc();
        System.runFinalization();
        System.gc();
    }

    /** JSON list of {"class", "methods": [{"name", "signature", "static"}]} for public classes in jars[0]. */
    public static String listCandidates(String[] jars) throws HostException { return Inspector.listCandidates(jars); }

    /** proto3 text for class {@code className} (methods: null or empty = all public methods declared by it). */
    public static String generateProto(String[] jars, String className, String[] methods, String pkg) throws HostException {
        return Inspector.generateProto(jars, className, methods, pkg);
    }
}

package clash.message;

/** Proto keywords as field names; Java keywords as bean properties (no field of that name). */
public class Keywords {
    public int message, option, syntax, service, rpc, returns, map, oneof, repeated, optional, reserved, to, max,
            extensions, group, weak, stream, edition, extend, required;
    private transient String pkg;
    private transient boolean pub;

    public String getPackage() { return pkg; }
    public void setPackage(String v) { pkg = v; }
    public boolean isPublic() { return pub; }
    public void setPublic(boolean v) { pub = v; }
}
